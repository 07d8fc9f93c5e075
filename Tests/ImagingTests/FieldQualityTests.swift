import Foundation
@testable import Imaging
import Testing

/// Real fields made blurred, over-exposed, empty, dim and shifted are each flagged for their
/// reason and the fields as they are are not, with thresholds fitted on other fields.
@Suite struct FieldQualityTests {
    static let plate = repositoryRoot.appendingPathComponent("demo/plate").path

    /// The demo plate's twelve fields by name: four of each cell type.
    static func fields() throws -> [GrayImage] {
        try FileManager.default.contentsOfDirectory(atPath: plate).filter { $0.hasSuffix(".png") }.sorted()
            .map { try PNGCodec.readGray("\(plate)/\($0)") }
    }

    static func reference() throws -> IntensityReference {
        try IntensityReference.load(path: repositoryRoot.appendingPathComponent("models/intensity.json").path)
    }

    @Test func eachFaultIsFlaggedForItsReasonOnFieldsTheThresholdsWereNotFittedOn() throws {
        let fields = try Self.fields()
        #expect(fields.count == 12)
        let reference = try Self.reference()
        let fitted = QualityThresholds.fit(fields.enumerated().filter { $0.offset % 3 != 0 }.map(\.element), reference: reference, source: "demo")
        let rule = IntensityRule.matched(reference)
        for (k, field) in fields.enumerated() where k % 3 == 0 {
            let raw = SampleImage(field)
            #expect(fitted.flags(.measure(raw, seen: rule.apply(raw))).isEmpty, "field \(k) as it is: \(FieldQuality.measure(raw, seen: rule.apply(raw)))")
            for flag in QualityFlag.allCases {
                let fault = FieldFault(flag)
                let measured: FieldQuality
                if flag == .unlikeTraining {
                    measured = .measure(raw, seen: fault.apply(rule.apply(raw)))
                } else {
                    let bad = SampleImage(fault.apply(field, seed: UInt64(100 + k)))
                    measured = .measure(bad, seen: rule.apply(bad))
                }
                #expect(fitted.flags(measured).contains(flag), "field \(k) made \(flag.rawValue): \(measured) against \(fitted)")
            }
        }
    }

    /// The same field in 16 bits, brighter and offset, is the same field to every measure but
    /// the gray levels it spans.
    @Test func measuresHoldForAnyGainAndOffset() throws {
        let field = try PNGCodec.readGray(demoImage)
        let eight = SampleImage(field)
        let sixteen = SampleImage(width: field.width, height: field.height, bitDepth: 16, samples: field.pixels.map { UInt16($0) * 200 + 1000 })
        let rule = IntensityRule.matched(try Self.reference())
        let a = FieldQuality.measure(eight, seen: rule.apply(eight)), b = FieldQuality.measure(sixteen, seen: rule.apply(sixteen))
        #expect(a.sharpness == b.sharpness && a.texture == b.texture && a.saturation == b.saturation && a.low == b.low && a.high == b.high)
        #expect(b.levels == a.levels * 200)
        #expect(a.sharpness > 2 && a.sharpness < 20 && a.texture > 1.0 / 16, "a real field is sharper than blur and more than noise: \(a)")
    }

    @Test func aFieldOfOneValueIsEmptyAndNothingElse() throws {
        let flat = GrayImage(width: 64, height: 48, fill: 120)
        let q = FieldQuality.measure(SampleImage(flat), seen: flat)
        #expect(q.sharpness == 0 && q.texture == 0 && q.saturation == 1 && q.levels == 0)
        let fitted = QualityThresholds.fit(try Self.fields().prefix(3).map { $0 }, reference: try Self.reference(), source: "demo")
        #expect(fitted.flags(q) == [.empty])
    }

    @Test func thresholdsAreWrittenAndReadBack() throws {
        let fitted = QualityThresholds.fit(try Self.fields().prefix(2).map { $0 }, reference: try Self.reference(), source: "demo")
        let path = scratchFolder().appendingPathComponent("qc.json").path
        try fitted.jsonData().write(to: URL(fileURLWithPath: path))
        #expect(try QualityThresholds.load(path: path) == fitted)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ImagingError.self) { try QualityThresholds.load(path: path) }
    }
}
