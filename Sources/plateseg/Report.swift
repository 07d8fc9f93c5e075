import ArgumentParser
import Foundation
import Pipeline

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an HTML report (plate map, growth curves, per-well table, overlays, failures, models) into a folder; opens offline.")

    @OptionGroup var store: StoreOptions
    @Option var plate: String?
    @Option(help: "Output folder (index.html and overlays/).") var out: String
    @Option(help: "Folder with the models and ensemble.json that were used.") var modelsDir: String = "models"

    func run() throws {
        let index = try PlateReport.write(from: try store.open(mustExist: true), plate: plate, to: URL(fileURLWithPath: out), modelsDir: modelsDir)
        print("report: \(index.path)")
    }
}
