import ArgumentParser
import Coordinator
import Foundation
import Imaging
import JobStore

/// Tiling and model choices shared by `submit` and `run`.
struct PlateOptions: ParsableArguments {
    @Argument(help: "The plate folder: PNG images, named by well and field or listed in a manifest.")
    var plateFolder: String

    @Option(help: "CSV with columns file,well,field that places images on the plate (overrides file names).")
    var manifest: String?

    @Option(help: "Plate name (default: the folder's name).")
    var plate: String?

    // 768 keeps a whole 704x520 Sartorius field in one tile; larger images are cut.
    @Option(help: "Tile size in pixels.")
    var tile: Int = 768

    @Option(help: "Overlap between neighbouring tiles in pixels; larger than the largest cell.")
    var overlap: Int = 96

    @Option(help: "Comma-separated networks to run on every tile.")
    var models: String = "yolox,maskrcnn,upernet"

    @Option(help: "Attempts before a job is failed.")
    var maxAttempts: Int = 3

    func validate() throws {
        guard tile > 0, overlap >= 0, overlap < tile else {
            throw ValidationError("--overlap must be at least 0 and smaller than --tile")
        }
        guard !modelNames.isEmpty else { throw ValidationError("--models names no network") }
    }

    var modelNames: [String] { models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func submit(to store: any JobStore) throws -> SubmitSummary {
        let manifest = try self.manifest.map { try Manifest(path: $0) }
        let submitter = PlateSubmitter(layout: TileLayout(size: tile, overlap: overlap), models: modelNames, maxAttempts: maxAttempts)
        return try submitter.submit(folder: plateFolder, plate: plate, manifest: manifest, to: store)
    }

    var plateName: String { plate ?? URL(fileURLWithPath: plateFolder).standardizedFileURL.lastPathComponent }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add a plate's images and their jobs to the queue (again: only what is new).")

    @OptionGroup var store: StoreOptions
    @OptionGroup var plate: PlateOptions

    func run() throws {
        let db = try store.open()
        let s = try plate.submit(to: db)
        print("plate \(plate.plateName): \(s.newImages) new images (\(s.unreadableImages) unreadable), \(s.newJobs) new jobs")
        for bad in try db.unreadableImages(plate: plate.plateName) {
            print("  unreadable: \(bad.error)")
        }
    }
}
