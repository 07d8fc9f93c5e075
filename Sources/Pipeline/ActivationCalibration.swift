import Foundation
import Imaging
import Models

/// Records, per network, the range of every layer's input over calibration images run in
/// float32: the scales int8 inference quantises with. The ranges go beside the model file as
/// `<network>.int8.json`, with the images used and the file's content hash.
public enum ActivationCalibration {
    /// The tiling `plateseg submit` uses by default: the networks see what they see on a plate.
    static let layout = TileLayout(size: 768, overlap: 96)

    /// `images`: paths of the calibration images (a training split, never the images a score is
    /// read on). `progress` is told each image as it is done.
    public static func record(network: String, in folder: ModelsFolder, images: [String], intensity: IntensityRule,
                              percentile: Double, progress: (String) -> Void = { _ in }) throws -> ActivationRanges {
        let file = "\(folder.path)/\(network).safetensors"
        let model = try ModelLoader.load(path: file, precision: .fp32)
        let recorder = ActivationRecorder()
        for path in images {
            let field = intensity.apply(try ImageFile.read(path))
            try recorder.recording {
                for tile in layout.tiles(width: field.width, height: field.height) { _ = try model.run(field.crop(tile)) }
            }
            progress(path)
        }
        return ActivationRanges(layers: recorder.ranges(percentile: percentile), percentile: percentile,
                                images: images.map { ($0 as NSString).lastPathComponent },
                                modelFile: ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: file))))
    }

    /// Where a network's ranges are kept.
    public static func path(network: String, in folder: ModelsFolder) -> String {
        "\(folder.path)/\(network).int8.json"
    }

    public static func write(_ ranges: ActivationRanges, network: String, in folder: ModelsFolder) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(ranges).write(to: URL(fileURLWithPath: path(network: network, in: folder)))
    }
}
