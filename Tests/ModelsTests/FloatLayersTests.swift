import Foundation
import Imaging
import Testing
@testable import Models

/// `floatLayers` of a network's int8 ranges: the layers that keep the activations' precision.
@Suite struct FloatLayersTests {
    @Test func aScopeHoldsWholeDottedParts() throws {
        let range = LayerRange(minimum: 0, bound: 1)
        let ranges = ActivationRanges(layers: ["dark2.0.conv": range, "dark2.1.m.0.conv1.conv": range, "dark20.conv": range, "head.stems.0.conv": range],
                                      percentile: 99.99, images: [], modelFile: "", floatLayers: ["dark2", "head.stems.0.conv"])
        #expect(Set(ranges.int8Layers.keys) == ["dark20.conv"])
        #expect(ranges.keepsFloat("dark2.1.m.0.conv1.conv") && !ranges.keepsFloat("dark20.conv"))
        // Ranges written before the list existed keep every layer in int8.
        let old = #"{"layers": {"a": {"minimum": 0, "bound": 1}}, "percentile": 99.99, "images": [], "modelFile": ""}"#
        let decoded = try JSONDecoder().decode(ActivationRanges.self, from: Data(old.utf8))
        #expect(decoded.floatLayers.isEmpty && decoded.int8Layers.keys.sorted() == ["a"])
    }

    /// The shipped YOLOX and its ranges, copied with `floatLayers` replaced, run on a demo field.
    static func run(keepingFloat scopes: [String]) throws -> [Detection] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-float-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let shipped = Fixture.repository.appendingPathComponent("models/yolox.safetensors").path
        let path = folder.appendingPathComponent("yolox.safetensors").path
        try FileManager.default.copyItem(atPath: shipped, toPath: path)
        var ranges = try ModelLoader.int8Ranges(of: shipped)
        ranges.floatLayers = scopes
        try ranges.write(besideModel: path)
        return try ModelLoader.load(path: path, precision: .int8).run(ReducedPrecisionTests.field()).detections
    }

    /// With every layer kept float, int8 computes exactly what the activations' precision does;
    /// keeping only the stem float changes what int8 computes, and is still not that precision.
    @Test(.enabled(if: Precision.int8.isNative, "this processor has no int8 dot-product instructions (VNNI)"))
    func layersKeptFloatComputeInTheActivationsPrecision() throws {
        let float = try ModelLoader.load(path: Fixture.repository.appendingPathComponent("models/yolox.safetensors").path,
                                         precision: Precision.int8.activations).run(ReducedPrecisionTests.field()).detections
        #expect(float.count > 20)
        #expect(try Self.run(keepingFloat: ["backbone", "head"]) == float)
        let int8 = try Self.run(keepingFloat: [])
        let stemFloat = try Self.run(keepingFloat: ["backbone.backbone.stem"])
        #expect(int8 != float && stemFloat != float && stemFloat != int8)
    }
}
