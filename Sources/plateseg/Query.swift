import ArgumentParser
import Foundation
import JobStore
import Pipeline

extension RowFormat: ExpressibleByArgument {}

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

    @Option var format: RowFormat = .table

    func validate() throws {
        if cells && overTime { throw ValidationError("--cells and --over-time are two different views; choose one") }
    }

    func run() throws {
        let db = try store.openForReading()
        let q = try CellFilter.query(db, plate: plate, well: well, cellType: cellType, timepoint: timepoint)
        if cells {
            let roots = Dictionary(try db.plates().map { ($0.name, $0.root) }, uniquingKeysWith: { a, _ in a })
            let out = try RowOutput(format, header: CellExport.header)
            try db.forEachCell(q) { try out.write(CellExport.row($0, image: relativePath($0.imagePath, root: roots[$0.plate] ?? ""))) }
            try out.finish()
        } else if overTime {
            let table = GrowthTable(try db.wellCounts(q))
            let out = try RowOutput(format, header: ["plate", "well", "cell_type"] + table.times.map { $0?.label ?? "-" })
            try table.rows.forEach { row in try out.write([row.plate, row.well, row.cellType] + row.cells.map { "\($0)" }) }
            try out.finish()
        } else {
            let counts = try db.wellCounts(q)
            // CSV and JSON keep one shape for every plate; a table shows no empty time column.
            let timed = format != .table || counts.contains(where: { $0.timepoint != nil })
            let out = try RowOutput(format, header: ["plate", "well"] + (timed ? ["timepoint"] : []) + ["cell_type", "cells", "images", "mean_area", "mean_score"])
            for c in counts {
                try out.write([c.plate, c.well] + (timed ? [c.timepoint?.label ?? ""] : [])
                              + [c.cellType, "\(c.cells)", "\(c.images)", String(format: "%.1f", c.meanArea), String(format: "%.3f", c.meanScore)])
            }
            try out.finish()
        }
    }
}
