import Foundation
import Imaging
import Testing
@testable import Models

@Suite struct FlipFusionTests {
    private func box(_ x0: Float, _ y0: Float, _ x1: Float, _ y1: Float) -> Box { Box(x0: x0, y0: y0, x1: x1, y1: y1) }

    private func look(_ cells: [(Box, Float, Int)], mask: [Float]? = nil) -> BoxMaskedDetections {
        BoxMaskedDetections(
            detections: cells.map { Candidate(box: $0.0, score: $0.1, label: $0.2, probabilities: (0..<3).map { $0 == 0 ? 1 : 0 }) },
            masks: cells.map { _ in mask ?? [Float](repeating: 1, count: 16) })
    }

    @Test func resamplingOntoItsOwnBoxChangesNothing() {
        let mask = (0..<16).map { Float($0 * 7 % 16) / 15 }
        let b = box(3, 5, 19, 13)
        let same = FlipFusion.resample(mask, from: b, onto: b)
        #expect(zip(same, mask).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    /// Left column 0, right columns 1 over x 0...4: the same boundary seen on a box shifted
    /// right by one cell lies one cell further left in the new grid.
    @Test func resamplingFollowsTheImageNotTheGrid() {
        let mask: [Float] = (0..<16).map { $0 % 4 == 0 ? 0 : 1 }
        let moved = FlipFusion.resample(mask, from: box(0, 0, 4, 4), onto: box(1, 0, 5, 4))
        #expect(moved.enumerated().allSatisfy { $0.element == 1 }, "x 1...5 lies where the source is all 1 or held at its edge")
        let wider = FlipFusion.resample(mask, from: box(0, 0, 4, 4), onto: box(-4, 0, 4, 4))
        #expect(wider[0] == 0 && wider[1] == 0 && wider[3] == 1, "left of the source its edge value is held")
    }

    @Test func mirroringTwiceIsTheIdentityAndMirrorsBoxAndMask() {
        let mask = (0..<16).map(Float.init)
        let one = look([(box(2, 3, 10, 7), 0.9, 1)], mask: mask)
        let m = one.mirrored(width: 20)
        #expect(m.detections[0].box == box(10, 3, 18, 7))
        #expect(Array(m.masks[0][0..<4]) == [3, 2, 1, 0])
        let back = m.mirrored(width: 20)
        #expect(back.detections[0].box == one.detections[0].box && back.masks == one.masks)
    }

    /// What both looks find is averaged; what one look finds alone keeps half its score; classes
    /// do not pair across.
    @Test func pairsAverageAndLoneDetectionsLoseHalfTheirScore() {
        let direct = look([(box(10, 10, 30, 30), 0.875, 0), (box(50, 50, 70, 70), 0.5, 1)])
        var mirror = look([(box(12, 10, 32, 30), 0.625, 0), (box(50, 50, 70, 70), 0.75, 0)])
        mirror.detections[0].probabilities = [0, 1, 0]
        let fused = FlipFusion(limit: 10).fuse(direct, mirror)
        #expect(fused.detections.map(\.score) == [0.75, 0.375, 0.25])
        #expect(fused.detections[0].box == box(11, 10, 31, 30))
        #expect(fused.detections[0].probabilities == [0.5, 0.5, 0])
        #expect(fused.detections.map(\.label) == [0, 0, 1])
        #expect(fused.masks.count == 3 && fused.masks.allSatisfy { $0.allSatisfy { abs($0 - 1) < 1e-6 } })
    }

    /// The better direct detection takes its partner first, even where a weaker one overlaps it
    /// more; the weaker one is then alone. `limit` keeps the best.
    @Test func betterDetectionsPairFirstAndTheLimitKeepsTheBest() {
        let direct = look([(box(0, 0, 20, 20), 0.5, 0), (box(2, 0, 22, 20), 0.875, 0)])
        let mirror = look([(box(1, 0, 21, 20), 0.625, 0)])
        let fused = FlipFusion(limit: 10).fuse(direct, mirror)
        #expect(fused.detections.map(\.score) == [0.75, 0.25])
        #expect(fused.detections[0].box == box(1.5, 0, 21.5, 20))
        #expect(FlipFusion(limit: 1).fuse(direct, mirror).detections.count == 1)
        let apart = look([(box(40, 0, 60, 20), 0.625, 0)])
        #expect(FlipFusion(limit: 10).fuse(direct, apart).detections.map(\.score) == [0.4375, 0.3125, 0.25])
    }

    /// The engine's Mask R-CNN with test-time flip on the fixture network against
    /// training/archs/maskrcnn.py's `detect_with_flip` (training/parity/make_fixtures.py).
    @Test func maskRCNNWithFlipMatchesPyTorch() throws {
        let expected = try Fixture.expected("maskrcnn")
        let plain = try #require(try Fixture.model("maskrcnn") as? MaskRCNN)
        var config = plain.config
        config.testTimeFlip = true
        let model = try MaskRCNN(weights: Weights(file: SafeTensorsFile(path: Fixture.path("maskrcnn.safetensors"))), config: config)
        let tile = try expected.tile()
        let found = try model.detect(tile)
        try expectSameBoxMasked(found, expected, "flip")
        #expect(try model.run(tile).detections.count == found.detections.count)
    }

    /// A random network finds other cells in the mirror image, so nothing pairs above; here the
    /// fixture's detections pair with a copy shifted by an eighth of each box (as make_fixtures.py).
    @Test func pairedDetectionsMatchPyTorch() throws {
        let expected = try Fixture.expected("maskrcnn")
        let model = try #require(try Fixture.model("maskrcnn") as? MaskRCNN)
        let direct = try model.detect(try expected.tile())
        let m = model.config.maskSize
        let copy = BoxMaskedDetections(
            detections: direct.detections.map {
                var c = $0
                let w = $0.box.x1 - $0.box.x0, h = $0.box.y1 - $0.box.y0
                c.box = Box(x0: $0.box.x0 + 0.125 * w, y0: $0.box.y0 + 0.125 * h, x1: $0.box.x1 + 0.125 * w, y1: $0.box.y1 + 0.125 * h)
                c.score = $0.score * 0.8
                c.probabilities = $0.probabilities.reversed()
                return c
            },
            masks: direct.masks.map { mask in (0..<(m * m)).map { mask[$0 % m * m + $0 / m] } })
        let fused = FlipFusion(limit: model.config.maxDetections).fuse(direct, copy)
        let boxes = try expected.values("pairs.boxes"), scores = try expected.values("pairs.scores")
        #expect(fused.detections.count == scores.count && scores.count == direct.detections.count, "every detection pairs")
        for (i, d) in fused.detections.enumerated() where i < scores.count {
            let close = zip([d.box.x0, d.box.y0, d.box.x1, d.box.y1], boxes[(4 * i)..<(4 * i + 4)]).allSatisfy { abs($0 - $1) < 2e-3 }
            #expect(close && abs(d.score - scores[i]) < 1e-4, "detection \(i)")
        }
        expectClose(fused.detections.flatMap(\.probabilities), try expected.values("pairs.probabilities"), "probabilities")
        let got = fused.masks.flatMap { $0 }, want = try expected.values("pairs.masks")
        #expect(got.count == want.count)
        // resampling across boxes a fraction of a pixel wide magnifies float rounding; one step of
        // the 8-bit artifact is the difference that would show
        let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1 / 255, "largest mask difference \(worst)")
    }
}

