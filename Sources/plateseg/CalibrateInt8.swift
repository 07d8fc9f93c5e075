import ArgumentParser
import Foundation
import Imaging
import Models
import Pipeline

struct CalibrateInt8: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate-int8",
        abstract: "Run the networks in fp32 on training images and record each layer's input and output ranges for int8 (<network>.int8.json beside the model).")

    @OptionGroup var training: SplitImages

    @Option(help: "At most this many images of the split, the first by name.")
    var limit: Int = 32

    @Option(help: "The percentile of |x| each layer's range is set to.")
    var percentile: Double = 99.99

    @Option(help: "Comma-separated networks.")
    var networks: String = ModelsFolder.networks.joined(separator: ",")

    @Option(help: "How fields become the networks' input, as `submit --intensity`.")
    var intensity: String = "auto"

    @Flag(help: "Record input ranges only: in int8 the networks' layers then keep bf16 between them (UPerNet's shipped ranges, models/MODEL_CARD.md).")
    var inputsOnly = false

    @Option(help: ArgumentHelp("Comma-separated layers (or scopes, e.g. backbone.backbone.dark2) that keep the activations' precision in int8.",
                               discussion: "They name one network's layers: calibrate that network alone (--networks)."))
    var keepFloat: String = ""

    @Option(help: "Folder with the model files and intensity.json; the ranges are written there.")
    var modelsDir: String = "models"

    func validate() throws {
        guard limit >= 1 else { throw ValidationError("--limit \(limit): give at least 1 image") }
        guard percentile > 50, percentile <= 100 else { throw ValidationError("--percentile \(percentile): give a value above 50 and at most 100") }
    }

    func run() throws {
        let images = Array(try training.paths().prefix(limit))
        let rule = try ModelsFolder.intensityRule(intensity, in: modelsDir)
        let folder = ModelsFolder(modelsDir).path
        for network in networks.split(separator: ",").map(String.init) {
            let file = "\(folder)/\(network).safetensors"
            let floatLayers = keepFloat.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if let scope = try ActivationRanges.unknownLayers(floatLayers, of: file).first {
                throw ValidationError("--keep-float \(scope) names no layer of \(network) (\(file)); give its layers' weight names, and calibrate each network alone")
            }
            var done = 0
            let ranges = try ActivationRanges.calibrate(modelFile: file, images: images, intensity: rule, percentile: percentile,
                                                        floatLayers: floatLayers, inputsOnly: inputsOnly) { _ in
                done += 1
                FileHandle.standardError.write(Data("\r\(network): \(done)/\(images.count) images".utf8))
            }
            FileHandle.standardError.write(Data("\n".utf8))
            let kept = ranges.floatLayers.isEmpty ? "" : " (\(ranges.layers.keys.filter(ranges.keepsFloat).count) kept in float)"
            print("\(network): \(ranges.layers.count) layers\(kept) from \(images.count) images of split \(training.split); wrote \(ActivationRanges.path(besideModel: file))")
        }
        print("""
            --precision int8 uses these ranges now; --precision auto only for a file marked "validated": true, \
            to be set once int8 keeps fp32's scores and counts on validation images (training/eval_split.sh, models/MODEL_CARD.md)
            """)
    }
}
