import ArgumentParser
import Foundation
import Imaging
import Pipeline

struct CalibrateInt8: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate-int8",
        abstract: "Run the networks in fp32 on training images and record each layer's input range for int8 (<network>.int8.json beside the model).")

    @Argument(help: "Folder of the calibration images.")
    var folder: String

    @Option(help: "CSV with columns id and split (file names without extension); only its rows of --split are used.")
    var list: String

    @Option(help: "The split to calibrate on: the networks' training split, never the one scores are read on.")
    var split: String = "train"

    @Option(help: "At most this many images of the split, the first by name.")
    var limit: Int = 32

    @Option(help: "The percentile of |x| each layer's range is set to.")
    var percentile: Double = 99.99

    @Option(help: "Comma-separated networks.")
    var networks: String = "yolox,maskrcnn,upernet"

    @Option(help: "How fields become the networks' input, as `submit --intensity`.")
    var intensity: String = "auto"

    @Option(help: "Folder with the model files and intensity.json; the ranges are written there.")
    var modelsDir: String = "models"

    func validate() throws {
        guard limit >= 1 else { throw ValidationError("--limit \(limit): give at least 1 image") }
        guard percentile > 50, percentile <= 100 else { throw ValidationError("--percentile \(percentile): give a value above 50 and at most 100") }
    }

    func run() throws {
        let ids = try SplitList(path: list).ids(of: split)
        let images = try FileManager.default.contentsOfDirectory(atPath: folder).filter {
            ImageFile.isImageName($0) && ids.contains(($0 as NSString).deletingPathExtension)
        }.sorted().prefix(limit).map { (folder as NSString).appendingPathComponent($0) }
        guard !images.isEmpty else { throw ValidationError("no image in \(folder) is in split \(split) of \(list)") }
        let reference = "\(modelsDir)/intensity.json"
        let rule = try IntensityRule(parsing: intensity, reference: try IntensityReference.load(path: reference))
        let models = ModelsFolder(modelsDir)
        for network in networks.split(separator: ",").map(String.init) {
            var done = 0
            let ranges = try ActivationCalibration.record(network: network, in: models, images: images, intensity: rule,
                                                          percentile: percentile) { _ in
                done += 1
                FileHandle.standardError.write(Data("\r\(network): \(done)/\(images.count) images".utf8))
            }
            FileHandle.standardError.write(Data("\n".utf8))
            try ActivationCalibration.write(ranges, network: network, in: models)
            print("\(network): \(ranges.layers.count) layers from \(images.count) images of split \(split); wrote \(ActivationCalibration.path(network: network, in: models))")
        }
    }
}
