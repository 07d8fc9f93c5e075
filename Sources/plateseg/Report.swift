import ArgumentParser
import Foundation
import JobStore
import Pipeline

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HTML report (plate map, growth curves, a page per well with its fields, failures, models) into a folder; opens offline.",
        discussion: "Of the newest plate unless --plate or --all-plates says otherwise. Written beside --out and renamed into place when complete.")

    @OptionGroup var store: StoreOptions
    @Option(help: "This plate (default: the newest submitted).") var plate: String?
    @Flag(help: "Every plate in the database.") var allPlates = false
    @Option(help: "Output folder (index.html, wells/, thumbs/, overlays/); a report there is replaced.") var out: String
    @Option(help: "Folder with the models and ensemble.json that were used.") var modelsDir: String = "models"
    @Option(help: ArgumentHelp("Full-size overlays besides the thumbnails: all, none, or wells (B03,C04). Default: all for a report of at most \(PlateReport.smallReportFields) fields, else none.",
                               valueName: "all|none|WELLS"))
    var overlays: String?

    func validate() throws {
        if plate != nil && allPlates { throw ValidationError("--plate and --all-plates: choose one") }
        _ = try asUsageError { try PlateReport.FullOverlays(parsing: overlays) }
    }

    func run() throws {
        let choice: PlateReport.Plates = allPlates ? .all : plate.map { .named($0) } ?? .newest
        let index = try PlateReport.write(from: try store.openForReading(), plates: choice, to: out, modelsDir: modelsDir,
                                         overlays: try PlateReport.FullOverlays(parsing: overlays))
        print("report: \(index.path)")
    }
}
