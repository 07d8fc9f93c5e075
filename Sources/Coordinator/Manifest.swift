import CSV
import Foundation
import JobStore

/// A CSV that places images on the plate when their names do not, or not rightly: header
/// `file,well` and optionally `field`, `timepoint` (a scan number, or `01d04h00m` since the first
/// scan), `channel` and `page` (of a multi-page TIFF, from 1), one row per image, `file` relative
/// to the plate folder. A row overrides what the file's name says. Read as RFC 4180 by CSV.swift:
/// quoted fields (commas and quotes inside), CRLF line ends and a UTF-8 byte-order mark, as Excel
/// and Python's `csv` write them.
public struct Manifest: Sendable {
    public var path: String
    public var identities: [String: ImageIdentity]
    /// Rows that could not be used, each with the file, row number and what is wrong.
    public var rowErrors: [String: String]
    /// The page of a multi-page TIFF that a row names (0 is the first).
    public var pages: [String: Int]
    /// The row (from 2: the header is row 1) that placed each file.
    public var rows: [String: Int]

    public init(path: String) throws {
        self.path = path
        var records = try Self.records(path)
        guard !records.isEmpty else { throw CoordinatorError.manifest(path: path, reason: "it is empty; expected a header `file,well,field`") }
        let header = records.removeFirst().fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let fileColumn = header.firstIndex(of: "file"), let wellColumn = header.firstIndex(of: "well") else {
            throw CoordinatorError.manifest(path: path, reason: "its header (\(header.joined(separator: ","))) must name the columns `file` and `well` (and optionally `field`, `timepoint`, `channel`, `page`)")
        }
        let fieldColumn = header.firstIndex(of: "field")
        let timeColumn = header.firstIndex(of: "timepoint")
        let channelColumn = header.firstIndex(of: "channel")
        let pageColumn = header.firstIndex(of: "page")
        let wellPattern = try! Regex("^([A-Za-z]{1,2})(\\d{1,2})$")
        identities = [:]
        rowErrors = [:]
        pages = [:]
        rows = [:]
        var firstRow: [String: Int] = [:]
        for (row, fields) in records where !(fields.count == 1 && fields[0].trimmingCharacters(in: .whitespaces).isEmpty) {
            let cells = fields.map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == header.count else {
                let file = cells.indices.contains(fileColumn) ? cells[fileColumn] : "row \(row)"
                rowErrors[file] = "\(path) row \(row): has \(cells.count) columns, the header has \(header.count); fix the row and submit again"
                continue
            }
            let file = cells[fileColumn]
            // Only files found in the plate folder are read: a row cannot reach outside it.
            if file.hasPrefix("/") || file.split(separator: "/").contains("..") {
                rowErrors[file] = "\(path) row \(row): \(file) is outside the plate folder; name files relative to the plate folder, or copy the image into it"
                continue
            }
            // Two rows for one file: which is right cannot be guessed, so neither is used.
            if let first = firstRow[file] {
                identities[file] = nil
                pages[file] = nil
                rowErrors[file] = "\(path) rows \(first) and \(row) both list \(file), so it was not submitted; keep one row per file and submit again"
                continue
            }
            firstRow[file] = row
            rows[file] = row
            let wellText = cells[wellColumn]
            guard let m = wellText.firstMatch(of: wellPattern), let col = Int(m.output[1 + 1].substring!),
                  let well = ImageIdentity.normalizedWell(row: m.output[1].substring!, column: col)
            else {
                rowErrors[file] = "\(path) row \(row): well \"\(wellText)\" is not a well name like B03; fix the row and submit again"
                continue
            }
            var identity = ImageIdentity(well: well, field: nil)
            if let fc = fieldColumn, !cells[fc].isEmpty {
                guard let f = Int(cells[fc]), f >= 0 else {
                    rowErrors[file] = "\(path) row \(row): field \"\(cells[fc])\" is not a whole number; fix the row and submit again"
                    continue
                }
                identity.field = f
            }
            if let tc = timeColumn, !cells[tc].isEmpty {
                guard let t = TimePoint(parsing: cells[tc]) else {
                    rowErrors[file] = "\(path) row \(row): timepoint \"\(cells[tc])\" is neither a scan number nor a time like 01d04h00m; fix the row and submit again"
                    continue
                }
                identity.timepoint = t
            }
            if let cc = channelColumn, !cells[cc].isEmpty {
                identity.channel = cells[cc]
            }
            if let pc = pageColumn, !cells[pc].isEmpty {
                guard let page = Int(cells[pc]), page >= 1 else {
                    rowErrors[file] = "\(path) row \(row): page \"\(cells[pc])\" is not a page number (1 is the first); fix the row and submit again"
                    continue
                }
                pages[file] = page - 1
            }
            identities[file] = identity
        }
    }

    /// The file's records with their row numbers (the header is row 1).
    static func records(_ path: String) throws -> [(row: Int, fields: [String])] {
        var text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CoordinatorError.manifest(path: path, reason: "cannot read it as UTF-8 text (\(error.localizedDescription)); save it as CSV (UTF-8)")
        }
        // Excel's "CSV UTF-8" begins with a byte-order mark.
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        let reader: CSVReader
        do { reader = try CSVReader(string: text) } catch {
            throw CoordinatorError.manifest(path: path, reason: "cannot read it as CSV (\(error))")
        }
        var records: [(row: Int, fields: [String])] = []
        while let fields = reader.next() { records.append((records.count + 1, fields)) }
        if let error = reader.error {
            throw CoordinatorError.manifest(path: path, reason: "is not CSV after row \(records.count) (\(error)); save it as CSV (UTF-8)")
        }
        return records
    }
}

public enum CoordinatorError: Error, CustomStringConvertible {
    case manifest(path: String, reason: String)
    case plateFolder(path: String, reason: String)

    public var description: String {
        switch self {
        case let .manifest(path, reason): return "manifest \(path): \(reason)"
        case let .plateFolder(path, reason): return "plate folder \(path): \(reason)"
        }
    }
}
