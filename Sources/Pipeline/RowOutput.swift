import Foundation

/// How `query` writes its rows: an aligned table, RFC 4180 CSV, or JSON (an array of objects,
/// numbers as numbers, an empty field as null).
public enum RowFormat: String, Sendable, CaseIterable {
    case table, csv, json
}

/// Rows to standard output as they come (CSV and JSON: a plate's cells need not fit in memory);
/// a table is aligned once every row is in.
public final class RowOutput {
    private let format: RowFormat
    private let header: [String]
    private let out = FileHandle.standardOutput
    private var csv: CSVOutput?
    private var table: [[String]] = []
    private var first = true
    /// What a table with no rows says.
    private let empty: String

    public init(_ format: RowFormat, header: [String], empty: String = "No cells match.") throws {
        self.format = format
        self.header = header
        self.empty = empty
        switch format {
        case .table: table = [header]
        case .csv:
            fflush(nil)
            csv = try CSVOutput(out, name: "standard output")
            try csv?.write(header)
        case .json: out.write(Data("[".utf8))
        }
    }

    public func write(_ row: [String]) throws {
        switch format {
        case .table: table.append(row)
        case .csv: try csv?.write(row)
        case .json:
            let object = Dictionary(uniqueKeysWithValues: zip(header, row.map(Self.jsonValue)))
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            out.write(Data(((first ? "\n" : ",\n") + String(decoding: data, as: UTF8.self)).utf8))
            first = false
        }
    }

    public func finish() throws {
        switch format {
        case .table: print(table.count > 1 ? TextTable.lines(table).joined(separator: "\n") : empty)
        case .csv: try csv?.finish()
        case .json: out.write(Data("\n]\n".utf8))
        }
    }

    static func jsonValue(_ s: String) -> Any {
        if s.isEmpty { return NSNull() }
        if let i = Int(s) { return i }
        if let d = Double(s) { return d }
        return s
    }
}
