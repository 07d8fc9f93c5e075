import Foundation
import Imaging
import Testing

@Suite struct IntensityTests {
    let reference = IntensityReference(lowPercentile: 1, highPercentile: 99, lowValue: 80.5, highValue: 180.25, images: 3, source: "test")

    var field: SampleImage { get throws { SampleImage(try PNGCodec.readGray(demoImage)) } }

    /// The same real field as 16 bits (x·257, and with a gain and an offset) gives the very same
    /// 8-bit input to the networks: the rule reads ranks, and its arithmetic is exact.
    @Test func gainAndOffsetDoNotChangeWhatTheNetworksSee() throws {
        let original = try field
        let rule = IntensityRule.matched(reference)
        let eight = rule.apply(original)
        for (gain, offset) in [(257, 0), (40, 9000), (3, 17)] {
            let sixteen = SampleImage(width: original.width, height: original.height, bitDepth: 16,
                                      samples: original.samples.map { UInt16(Int($0) * gain + offset) })
            #expect(rule.apply(sixteen) == eight, "x·\(gain)+\(offset)")
        }
    }

    @Test func theMatchedRuleBringsAFieldsPercentilesToTheReference() throws {
        let out = IntensityRule.matched(reference).apply(try field)
        let sorted = out.pixels.sorted()
        let low = Int(sorted[Int((0.01 * Double(sorted.count)).rounded(.up)) - 1])
        let high = Int(sorted[Int((0.99 * Double(sorted.count)).rounded(.up)) - 1])
        #expect(abs(low - 80) <= 1 && abs(high - 180) <= 1, "\(low), \(high)")
    }

    /// A dimmed, low-contrast copy (what a shorter exposure gives) is brought back near the original.
    @Test func aDimmedCopyComesBackCloseToTheOriginal() throws {
        let original = try field
        let dimmed = SampleImage(width: original.width, height: original.height, bitDepth: 8,
                                 samples: original.samples.map { UInt16((Double($0) * 0.35 + 12).rounded()) })
        let rule = IntensityRule.matched(reference)
        let a = rule.apply(original).pixels, b = rule.apply(dimmed).pixels
        let meanError = zip(a, b).map { abs(Double($0) - Double($1)) }.reduce(0, +) / Double(a.count)
        #expect(meanError < 2, "mean error \(meanError) of 255")
        let none = IntensityRule.none.apply(dimmed).pixels
        let untreated = zip(a, none).map { abs(Double($0) - Double($1)) }.reduce(0, +) / Double(a.count)
        #expect(untreated > 20, "without the rule it is far off")
    }

    @Test func fixedAndNoneAreTheirWindows() {
        let sixteen = SampleImage(width: 4, height: 1, bitDepth: 16, samples: [0, 1000, 3000, 65535])
        #expect(IntensityRule.fixed(low: 1000, high: 3000).apply(sixteen).pixels == [0, 0, 255, 255])
        #expect(IntensityRule.fixed(low: 1000, high: 3000).apply(SampleImage(width: 1, height: 1, bitDepth: 16, samples: [2000])).pixels == [128])
        #expect(IntensityRule.none.apply(sixteen).pixels == [0, 4, 12, 255])
        let eight = SampleImage(width: 3, height: 1, bitDepth: 8, samples: [0, 77, 255])
        #expect(IntensityRule.none.apply(eight).pixels == [0, 77, 255])
    }

    @Test func theOptionIsParsedOrRefusedWithWhatToWrite() throws {
        #expect(try IntensityRule(parsing: "auto", reference: reference) == .matched(reference))
        #expect(try IntensityRule(parsing: "fixed:100,4000", reference: reference) == .fixed(low: 100, high: 4000))
        #expect(try IntensityRule(parsing: "none", reference: reference) == IntensityRule.none)
        for bad in ["fixed:4000,100", "fixed:1", "bright", "fixed:-5,10"] {
            #expect { try IntensityRule(parsing: bad, reference: reference) } throws: { "\($0)".contains("--intensity") }
        }
    }

    @Test func fittingAveragesThePercentilesOfTheImages() throws {
        let a = SampleImage(width: 100, height: 1, bitDepth: 8, samples: (0..<100).map { UInt16($0) })
        let b = SampleImage(width: 100, height: 1, bitDepth: 8, samples: (0..<100).map { UInt16($0 + 100) })
        let fitted = IntensityReference.fit([a, b], lowPercentile: 10, highPercentile: 90, source: "two ramps")
        #expect(fitted.lowValue == 59 && fitted.highValue == 139 && fitted.images == 2)
    }
}
