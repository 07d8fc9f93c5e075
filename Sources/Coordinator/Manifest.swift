import Foundation

/// A CSV that places images on the plate when their names do not: header `file,well,field`,
/// one row per image, `file` relative to the plate folder. Fields may not contain commas.
public struct Manifest: Sendable {
    public var positions: [String: PlatePosition]
    /// Rows that could not be used, each with the file, row number and what is wrong.
    public var rowErrors: [String: String]

    public init(path: String) throws {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CoordinatorError.manifest(path: path, reason: "cannot read it (\(error.localizedDescription))")
        }
        var lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !lines.isEmpty else { throw CoordinatorError.manifest(path: path, reason: "it is empty; expected a header `file,well,field`") }
        let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let fileColumn = header.firstIndex(of: "file"), let wellColumn = header.firstIndex(of: "well") else {
            throw CoordinatorError.manifest(path: path, reason: "header must name the columns `file` and `well` (and optionally `field`)")
        }
        let fieldColumn = header.firstIndex(of: "field")
        positions = [:]
        rowErrors = [:]
        for (i, line) in lines.enumerated() where !line.isEmpty {
            let row = i + 2
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == header.count else {
                let file = cells.indices.contains(fileColumn) ? cells[fileColumn] : "row \(row)"
                rowErrors[file] = "\(path) row \(row): has \(cells.count) columns, the header has \(header.count); fix the row and submit again"
                continue
            }
            let file = cells[fileColumn]
            let wellText = cells[wellColumn]
            let wellPattern = try! Regex("^([A-Za-z])(\\d{1,2})$")
            guard let m = wellText.firstMatch(of: wellPattern), let col = Int(m.output[1 + 1].substring!),
                  let well = PlatePosition.normalizedWell(row: m.output[1].substring!, column: col)
            else {
                rowErrors[file] = "\(path) row \(row): well \"\(wellText)\" is not a well name like B03; fix the row and submit again"
                continue
            }
            var field: Int?
            if let fc = fieldColumn, !cells[fc].isEmpty {
                guard let f = Int(cells[fc]), f >= 0 else {
                    rowErrors[file] = "\(path) row \(row): field \"\(cells[fc])\" is not a whole number; fix the row and submit again"
                    continue
                }
                field = f
            }
            positions[file] = PlatePosition(well: well, field: field)
        }
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
