import ArgumentParser
import Foundation
import JobStore

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, csv, json
}

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "How many cells of which type, per well — or the cells themselves (--cells).",
        discussion: "Example: plateseg query --well B03 --cell-type astro")

    @OptionGroup var store: StoreOptions

    @Option var plate: String?
    @Option var well: String?
    @Option(name: .customLong("cell-type")) var cellType: String?

    @Flag(help: "List every cell (position, box, area, score) instead of counts.")
    var cells = false

    @Option var format: OutputFormat = .table

    func run() throws {
        let db = try store.open(mustExist: true)
        let q = CellQuery(plate: plate, well: well?.uppercased(), cellType: cellType)
        if cells {
            let found = try db.cells(q)
            emit(header: CellColumns.header, rows: found.map(CellColumns.row))
        } else {
            let counts = try db.wellCounts(q)
            emit(header: ["plate", "well", "cell_type", "cells", "images", "mean_area", "mean_score"],
                 rows: counts.map { [$0.plate, $0.well, $0.cellType, "\($0.cells)", "\($0.images)",
                                     String(format: "%.1f", $0.meanArea), String(format: "%.3f", $0.meanScore)] })
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
        if let i = Int(s) { return i }
        if let d = Double(s) { return d }
        return s
    }
}

enum CellColumns {
    static let header = ["plate", "well", "field", "image", "cell_type", "score", "area", "box_x", "box_y", "box_width",
                         "box_height", "centroid_x", "centroid_y"]

    static func row(_ c: LocatedCell) -> [String] {
        [c.plate, c.well ?? "", c.field.map(String.init) ?? "", (c.imagePath as NSString).lastPathComponent, c.cell.cellType,
         String(format: "%.4f", c.cell.score), "\(c.cell.area)", "\(c.cell.box.x)", "\(c.cell.box.y)", "\(c.cell.box.width)",
         "\(c.cell.box.height)", String(format: "%.2f", c.cell.centroid.x), String(format: "%.2f", c.cell.centroid.y)]
    }
}
