import Foundation
import Models
import Testing

/// A ranges file is checked as it is read: a range the recorder cannot make would give its layer
/// a meaningless int8 scale and silently wrong outputs.
@Suite struct ActivationRangesFileTests {
    func file(bound: String, minimum: String = "0", percentile: String = "99.99") -> Data {
        Data("""
            {"layers": {"backbone.conv": {"minimum": \(minimum), "bound": \(bound)}}, "percentile": \(percentile),
             "images": ["a.png"], "modelFile": "fnv1a64:0"}
            """.utf8)
    }

    @Test func rangesTheRecorderMakesAreRead() throws {
        let ranges = try ActivationRanges.decode(file(bound: "3.5", minimum: "-1"), file: "yolox.int8.json")
        #expect(ranges.layers["backbone.conv"]?.minimum == -1 && ranges.layers["backbone.conv"]?.bound == 3.5)
        #expect(try ActivationRanges.decode(file(bound: "0"), file: "yolox.int8.json").layers.count == 1, "a layer that only saw zeros")
    }

    @Test(arguments: [("-2", "99.99"), ("1", "0"), ("1", "120")])
    func aRangeNoCalibrationCanMakeIsRefusedNamingFileAndLayer(bound: String, percentile: String) throws {
        #expect {
            try ActivationRanges.decode(file(bound: bound, percentile: percentile), file: "models/yolox.int8.json")
        } throws: { error in
            let text = "\(error)"
            return text.hasPrefix("models/yolox.int8.json: ") && text.contains("calibrate-int8")
                && (percentile != "99.99" || text.contains("backbone.conv"))
        }
    }

    @Test func aNumberBeyondFloatIsRefused() throws {
        #expect(throws: (any Error).self) { try ActivationRanges.decode(file(bound: "1e39"), file: "yolox.int8.json") }
    }
}
