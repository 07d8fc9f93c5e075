import Foundation
import Imaging
import Testing
@testable import Models

@Suite struct ActivationRecorderTests {
    @Test func aPercentileIsReadToWithinOnePercent() throws {
        let x = try Tensor(shape: [1, 1, 10, 10], nchw: (1...100).map(Float.init))
        let recorder = ActivationRecorder()
        recorder.record("layer", x)
        recorder.record("layer", try Tensor(shape: [1, 1, 1, 4], nchw: [0, 0, 0, -3]))
        let all = try #require(recorder.ranges(percentile: 100)["layer"])
        #expect(all.bound >= 100 && all.bound <= 101.1)
        #expect(all.minimum == -3)
        // 104 values, 3 zeros and a second 3: the 52nd smallest |x| is 48.
        let half = try #require(recorder.ranges(percentile: 50)["layer"])
        #expect(half.bound >= 48 && half.bound <= 48 * 1.011)
    }

    /// Every convolution of a network reports its input, under its weights' name; a layer that
    /// reads a ReLU's output never saw a negative value.
    @Test func aRunRecordsEveryConvolutionsInputByItsWeightsName() throws {
        let path = Fixture.path("maskrcnn.safetensors")
        let model = try ModelLoader.load(path: path)
        let tile = try Fixture.expected("maskrcnn").tile()
        let recorder = ActivationRecorder()
        _ = try recorder.recording { try model.run(tile) }
        let ranges = recorder.ranges(percentile: 99.99)
        let file = try SafeTensorsFile(path: path)
        let convolutions = file.entries.keys.filter { $0.hasSuffix(".weight") && file.entries[$0]!.shape.count == 4 }
            .map { String($0.dropLast(".weight".count)) }
        #expect(convolutions.count > 20)
        for name in convolutions {
            #expect(ranges[name] != nil, "\(name) has no range")
        }
        let afterReLU = try #require(ranges["backbone.body.layer1.0.conv2"])
        #expect(afterReLU.minimum >= 0 && afterReLU.bound > 0)
        #expect(try #require(ranges["backbone.body.conv1"]).minimum < 0, "the normalised image")
        #expect(ranges["roi_heads.box_head.fc6"] != nil && ranges["roi_heads.mask_predictor.conv5_mask"] != nil)
        // What a convolution writes: after its ReLU never negative; the mask logits are.
        let outputs = recorder.outputRanges(percentile: 99.99)
        for name in convolutions {
            #expect(outputs[name] != nil, "\(name) has no output range")
        }
        #expect(try #require(outputs["backbone.body.layer1.0.conv2"]).minimum >= 0)
        #expect(try #require(outputs["roi_heads.mask_predictor.mask_fcn_logits"]).minimum < 0)
        #expect(outputs["roi_heads.box_head.fc6"] == nil, "fully connected layers keep floats")
    }

    /// int8 loads the ranges beside the file only when they were recorded for this version of it.
    @Test func rangesOfAnotherVersionOfTheFileAreRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-int8-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("yolox.safetensors").path
        try FileManager.default.copyItem(atPath: Fixture.path("yolox.safetensors"), toPath: path)
        #expect { try ModelLoader.load(path: path, precision: .int8) } throws: { "\($0)".contains("has no int8 calibration beside it") }
        let stale = ActivationRanges(layers: [:], percentile: 99.99, images: ["a.png"], modelFile: "fnv1a64:0000000000000000")
        try JSONEncoder().encode(stale).write(to: folder.appendingPathComponent("yolox.int8.json"))
        #expect { try ModelLoader.load(path: path, precision: .int8) } throws: { "\($0)".contains("was calibrated for another version of") }
        var current = stale
        current.modelFile = ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: path)))
        try JSONEncoder().encode(current).write(to: folder.appendingPathComponent("yolox.int8.json"))
        #expect(try ModelLoader.load(path: path, precision: .int8).kind == .yolox)
    }
}
