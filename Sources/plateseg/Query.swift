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
        let db = try store.open(mustExist: true)
        let label = timepoint.map { TimePoint(parsing: $0)?.label ?? $0 }
        let q = CellQuery(plate: plate, well: well?.uppercased(), cellType: cellType, timepoint: label)
        if cells {
            let found = try db.cells(q)
            emit(header: CellColumns.header, rows: found.map(CellColumns.row))
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

    private func emit(header: [String], rows: [[String]]) {
        switch format {
        case .table:
            if rows.isEmpty { print("No cells match."); return }
            printTable([header] + rows)
        case .csv:
            print(header.joined(separator: ","))
            rows.forEach { print($0.joined(separator: ",")) }
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

enum CellColumns {
    static let header = ["plate", "well", "field", "timepoint", "channel", "image", "cell_type", "score", "area", "box_x", "box_y",
                         "box_width", "box_height", "centroid_x", "centroid_y"]

    static func row(_ c: LocatedCell) -> [String] {
        [c.plate, c.well ?? "", c.field.map(String.init) ?? "", c.timepoint?.label ?? "", c.channel ?? "",
         (c.imagePath as NSString).lastPathComponent, c.cell.cellType,
         String(format: "%.4f", c.cell.score), "\(c.cell.area)", "\(c.cell.box.x)", "\(c.cell.box.y)", "\(c.cell.box.width)",
         "\(c.cell.box.height)", String(format: "%.2f", c.cell.centroid.x), String(format: "%.2f", c.cell.centroid.y)]
    }
}
