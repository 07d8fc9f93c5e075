import ArgumentParser
import Coordinator
import Foundation
import Imaging
import JobStore
import Models
import Pipeline

/// Tiling and model choices shared by `submit` and `run`.
struct PlateOptions: ParsableArguments {
    @Argument(help: "The plate folder: gray PNG and TIFF images (8 or 16 bits), named by well and field or listed in a manifest.")
    var plateFolder: String

    @Option(help: "CSV with columns file,well and optionally field,timepoint,channel that places images on the plate (overrides file names).")
    var manifest: String?

    @Option(help: ArgumentHelp("The channel to segment when fields have several (as the names give it: w1, ch1, Phase, d0); the others are listed in status.",
                               valueName: "channel"))
    var channel: String?

    @Option(help: ArgumentHelp("The time point of images whose names carry none: a scan number, or a time since the first scan like 01d04h00m. Submit a later scan of the plate under the same --plate with its own time point.",
                               valueName: "N|DDdHHhMMm"))
    var timepoint: String?

    @Option(help: "Plate name (default: the folder's name).")
    var plate: String?

    @Option(help: "Tile size in pixels.")
    var tile: Int = TileLayout.standard.size

    @Option(help: "Overlap between neighbouring tiles in pixels; larger than the largest cell.")
    var overlap: Int = TileLayout.standard.overlap

    @Option(help: "Comma-separated networks to run on every tile.")
    var models: String = ModelsFolder.networks.joined(separator: ",")

    @Option(help: "Attempts before a job is failed.")
    var maxAttempts: Int = 3

    @Option(help: ArgumentHelp(
        "How fields become the networks' 8-bit input: auto (each field's 1st and 99th percentiles to where the training images' lie, any bit depth or exposure), fixed:LO,HI (one window for the plate, in the file's units) or none (8-bit as is, 16-bit / 257).",
        valueName: "auto|fixed:LO,HI|none"))
    var intensity: String = "auto"

    @Option(help: "Folder with the model files, ensemble.json and intensity.json.")
    var modelsDir: String = "models"

    @Flag(help: "Keep each field's tile outputs after its merge, for `eval --model <network>` and `calibrate` (about 300 KB per 704x520 field); by default a merge removes them once the cells are stored.")
    var keepTileOutputs = false

    @Option(help: ArgumentHelp("µm per pixel of the plate's fields. Fields of another magnification than the training images' (recorded in the model files) are resized to the networks' scale; cells are mapped back to the field's pixels. --tile and --overlap are in the resized field's pixels.",
                               valueName: "µm"))
    var pixelSize: Double?

    func validate() throws {
        // Below the networks' largest stride (32) times a few cells, a tile holds no cell whole.
        guard tile >= 128 else { throw ValidationError("--tile \(tile): give at least 128 pixels (768 keeps a 704x520 field whole)") }
        guard overlap >= 0, overlap < tile else {
            throw ValidationError("--overlap must be at least 0 and smaller than --tile")
        }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts \(maxAttempts): give at least 1 (each job runs at most that many times)") }
        guard !modelNames.isEmpty else { throw ValidationError("--models names no network") }
        if let unknown = modelNames.first(where: { !ModelsFolder.networks.contains($0) }) {
            throw ValidationError("--models: no network named \(unknown); the networks are \(ModelsFolder.networks.joined(separator: ", "))")
        }
        if let pixelSize, !(pixelSize > 0 && pixelSize.isFinite) {
            throw ValidationError("--pixel-size \(pixelSize): give the fields' µm per pixel, above 0")
        }
        if let timepoint, TimePoint(parsing: timepoint) == nil {
            throw ValidationError("--timepoint \(timepoint): give a scan number (3) or a time since the first scan (01d04h00m)")
        }
    }

    var modelNames: [String] { models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func submit(to store: any JobStore) throws -> SubmitSummary {
        let manifest = try self.manifest.map { try Manifest(path: $0) }
        let submitter = PlateSubmitter(layout: TileLayout(size: tile, overlap: overlap), models: modelNames, maxAttempts: maxAttempts,
                                       intensity: try asUsageError { try ModelsFolder.intensityRule(intensity, in: modelsDir) }, channel: channel,
                                       scale: try asUsageError { try ModelsFolder.fieldScale(pixelSize: pixelSize, networks: modelNames, in: modelsDir) },
                                       keepTileOutputs: keepTileOutputs)
        return try submitter.submit(folder: plateFolder, plate: plate, manifest: manifest,
                                    timepoint: timepoint.flatMap(TimePoint.init(parsing:)), to: store)
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
        if let note = s.tilingNote { print(note) }
        if let note = s.changeNote { print(note) }
        for bad in try db.unreadableImages(plate: plate.plateName) {
            print("  unreadable: \(bad.error)")
        }
    }
}
