import ArgumentParser
import Foundation
import JobStore
import Pipeline

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, csv, json
}

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "How many cells of which type, per well — or the cells themselves (--cells).",
        discussion: "Examples: plateseg query --well B03 --cell-type astro; plateseg query --plate P1 --over-time")

    @OptionGroup var store: StoreOptions

    @Option var plate: String?
    @Option var well: String?
    @Option(name: .customLong("cell-type")) var cellType: String?
    @Option(help: ArgumentHelp("Only this time point (as status lists them: 3, or 01d04h00m).", valueName: "label"))
    var timepoint: String?

    @Flag(help: "List every cell (position, box, area, score) instead of counts.")
    var cells = false

    @Flag(help: "Counts per well and type as a growth table: one column per time point.")
    var overTime = false

    @Option var format: OutputFormat = .table

    func validate() throws {
        if cells && overTime { throw ValidationError("--cells and --over-time are two different views; choose one") }
    }

    func run() throws {
        let db = try store.openForReading()
        let q = try CellFilter.query(db, plate: plate, well: well, cellType: cellType, timepoint: timepoint)
        if cells {
            try emitCells(db, q)
        } else if overTime {
            let table = GrowthTable(try db.wellCounts(q))
            emit(header: ["plate", "well", "cell_type"] + table.times.map { $0?.label ?? "-" },
                 rows: table.rows.map { row in [row.plate, row.well, row.cellType] + row.cells.map { "\($0)" } })
        } else {
            let counts = try db.wellCounts(q)
            var header = ["plate", "well", "timepoint", "cell_type", "cells", "images", "mean_area", "mean_score"]
            var rows = counts.map { [$0.plate, $0.well, $0.timepoint?.label ?? "", $0.cellType, "\($0.cells)", "\($0.images)",
                                     String(format: "%.1f", $0.meanArea), String(format: "%.3f", $0.meanScore)] }
            // CSV and JSON keep one shape for every plate; a table shows no empty time column.
            if format == .table && !counts.contains(where: { $0.timepoint != nil }) {
                header.remove(at: 2)
                rows = rows.map { var r = $0; r.remove(at: 2); return r }
            }
            emit(header: header, rows: rows)
        }
    }

    /// A plate's cells are read a few hundred fields at a time: CSV and JSON go out as they come.
    private func emitCells(_ db: any JobStore, _ q: CellQuery) throws {
        let roots = Dictionary(try db.plates().map { ($0.name, $0.root) }, uniquingKeysWith: { a, _ in a })
        let row = { (c: LocatedCell) in CellExport.row(c, image: relativePath(c.imagePath, root: roots[c.plate] ?? "")) }
        switch format {
        case .table:
            var rows: [[String]] = []
            try db.forEachCell(q) { rows.append(row($0)) }
            emit(header: CellExport.header, rows: rows)
        case .csv:
            let csv = try CSVOutput(FileHandle.standardOutput, name: "standard output")
            try csv.write(CellExport.header)
            try db.forEachCell(q) { try csv.write(row($0)) }
            try csv.finish()
        case .json:
            var first = true
            FileHandle.standardOutput.write(Data("[".utf8))
            try db.forEachCell(q) { c in
                let object = Dictionary(uniqueKeysWithValues: zip(CellExport.header, row(c).map(jsonValue)))
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                FileHandle.standardOutput.write(Data(((first ? "\n" : ",\n") + String(decoding: data, as: UTF8.self)).utf8))
                first = false
            }
            FileHandle.standardOutput.write(Data("\n]\n".utf8))
        }
    }

    private func emit(header: [String], rows: [[String]]) {
        switch format {
        case .table:
            if rows.isEmpty { print("No cells match."); return }
            printTable([header] + rows)
        case .csv:
            fflush(nil)
            do {
                let csv = try CSVOutput(FileHandle.standardOutput, name: "standard output")
                try csv.write(header)
                try rows.forEach(csv.write)
                try csv.finish()
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
            }
        case .json:
            let objects = rows.map { Dictionary(uniqueKeysWithValues: zip(header, $0.map(jsonValue))) }
            let data = try! JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    private func jsonValue(_ s: String) -> Any {
        if s.isEmpty { return NSNull() }
        if let i = Int(s) { return i }
        if let d = Double(s) { return d }
        return s
    }
}
