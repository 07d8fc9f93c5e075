import ArgumentParser
import Foundation
import Imaging

struct FitIntensity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit-intensity",
        abstract: "Fit where the training images' intensities lie (their mean low and high percentiles) and write intensity.json.")

    @Argument(help: "Folder of the training images.")
    var folder: String

    @Option(help: "CSV with columns id and split (file names without extension); only its rows of --split are used.")
    var list: String

    @Option(help: "The split the networks were trained on.")
    var split: String = "train"

    @Option(help: "Low and high percentiles.")
    var percentiles: String = "1,99"

    @Option(help: "Where to write the reference.")
    var out: String = "models/intensity.json"

    func run() throws {
        let bounds = percentiles.split(separator: ",").compactMap { Double($0) }
        guard bounds.count == 2, bounds[0] >= 0, bounds[0] < bounds[1], bounds[1] <= 100 else {
            throw ValidationError("--percentiles must be LOW,HIGH with 0 <= LOW < HIGH <= 100")
        }
        let ids = try SplitList(path: list).ids(of: split)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter {
            ImageFile.isImageName($0) && ids.contains(($0 as NSString).deletingPathExtension)
        }.sorted()
        guard !files.isEmpty else { throw ValidationError("no image in \(folder) is in split \(split) of \(list)") }
        let images = try files.map { try ImageFile.read((folder as NSString).appendingPathComponent($0)) }
        let reference = IntensityReference.fit(images, lowPercentile: bounds[0], highPercentile: bounds[1],
                                               source: "split \(split) of \((list as NSString).lastPathComponent)")
        try reference.jsonData().write(to: URL(fileURLWithPath: out))
        print(String(format: "%d images: percentile %g at %.2f, percentile %g at %.2f; wrote %@", images.count,
                     reference.lowPercentile, reference.lowValue, reference.highPercentile, reference.highValue, out))
    }
}

/// A CSV that names each image's split (columns id and split, ids being file names without
/// extension), as ../shared/data's images.csv does.
struct SplitList {
    let path: String

    func ids(of split: String) throws -> Set<String> {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        guard let header = rows.first, let id = header.firstIndex(of: "id"), let s = header.firstIndex(of: "split") else {
            throw ValidationError("\(path): needs columns id and split")
        }
        return Set(rows.dropFirst().filter { $0.count > max(id, s) && $0[s] == split }.map { $0[id] })
    }
}
