import ArgumentParser
import Foundation
import Imaging
import Pipeline

struct FitIntensity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit-intensity",
        abstract: "Fit where the training images' intensities lie (their mean low and high percentiles) and write intensity.json.")

    @OptionGroup var training: SplitImages

    @Option(help: "Low and high percentiles.")
    var percentiles: String = "1,99"

    @Option(help: "Where to write the reference.")
    var out: String = "models/intensity.json"

    func run() throws {
        let bounds = percentiles.split(separator: ",").compactMap { Double($0) }
        guard bounds.count == 2, bounds[0] >= 0, bounds[0] < bounds[1], bounds[1] <= 100 else {
            throw ValidationError("--percentiles must be LOW,HIGH with 0 <= LOW < HIGH <= 100")
        }
        let images = try training.paths().map { try ImageFile.read($0) }
        let reference = IntensityReference.fit(images, lowPercentile: bounds[0], highPercentile: bounds[1],
                                               source: "split \(training.split) of \(PathName.file(training.list))")
        try reference.jsonData().write(to: URL(fileURLWithPath: out))
        print(String(format: "%d images: percentile %g at %.2f, percentile %g at %.2f; wrote %@", images.count,
                     reference.lowPercentile, reference.lowValue, reference.highPercentile, reference.highValue, out))
    }
}

/// Images of one split of a folder, as a CSV that names each image's split lists them (columns
/// id and split, ids being file names without extension, as ../shared/data's images.csv).
struct SplitImages: ParsableArguments {
    @Argument(help: "Folder of the training images.")
    var folder: String

    @Option(help: "CSV with columns id and split (file names without extension); only its rows of --split are used.")
    var list: String

    @Option(help: "The split the networks were trained on (never the one scores are read on).")
    var split: String = "train"

    /// The split's images in the folder, sorted by name.
    func paths() throws -> [String] {
        do { return try TrainingSplit.paths(folder: folder, list: list, split: split) } catch let e as TrainingSplitError { throw ValidationError(e.description) }
    }
}
