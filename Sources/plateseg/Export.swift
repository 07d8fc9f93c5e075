import ArgumentParser
import Foundation
import JobStore
import Pipeline

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the cells to a file: CSV (one row per cell, mask as COCO RLE), COCO json (loads in pycocotools), or label images (a TIFF per field).",
        discussion: "Written under a hidden name beside --out and renamed when complete: a failed export leaves nothing half-written under --out.")

    @OptionGroup var store: StoreOptions
    @Option var plate: String?
    @Option(help: ArgumentHelp("Only this time point.", valueName: "label")) var timepoint: String?
    @Option(help: "csv, coco, or labels (a folder: one 16- or 32-bit TIFF per field, pixel = cell, 0 = background, and cells.csv).")
    var format: CellExport.Format = .csv
    @Option(help: "Output file (a folder for labels).") var out: String

    func run() throws {
        let db = try store.openForReading()
        let q = try CellFilter.query(db, plate: plate, well: nil, cellType: nil, timepoint: timepoint)
        let count = try CellExport.write(format, from: db, q, to: out)
        print("wrote \(count) cells to \(out)")
    }
}

extension CellExport.Format: ExpressibleByArgument {}
