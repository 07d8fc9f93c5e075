import Imaging
import Testing
@testable import Models

@Suite struct MaskRCNNParityTests {
    private func traced() throws -> (MaskRCNNTrace, Fixture.Expected) {
        let expected = try Fixture.expected("maskrcnn")
        let model = try #require(try Fixture.model("maskrcnn") as? MaskRCNN)
        return (try model.trace(expected.tile()), expected)
    }

    @Test func rpnMapsMatchPyTorch() throws {
        let (t, expected) = try traced()
        #expect(t.rpnObjectness.count == 5)
        for i in 0..<5 {
            expectClose(t.rpnObjectness[i], try expected.values("rpn.objectness\(i)"), "objectness P\(i + 2)")
            expectClose(t.rpnDeltas[i], try expected.values("rpn.deltas\(i)"), "deltas P\(i + 2)")
        }
    }

    @Test func proposalsAndBoxHeadMatchPyTorch() throws {
        let (t, expected) = try traced()
        let want = try expected.values("proposals")
        #expect(t.proposals.count == want.count / 4)
        #expect(t.proposals.count > 50)
        var matching = 0
        for (i, p) in t.proposals.enumerated() where i < want.count / 4 {
            let w = Box(x0: want[4 * i], y0: want[4 * i + 1], x1: want[4 * i + 2], y1: want[4 * i + 3])
            if p.iou(w) > 0.99 { matching += 1 }
        }
        #expect(matching == t.proposals.count, "proposals in the same order")
        guard matching == t.proposals.count else { return }
        expectClose(t.classLogits, try expected.values("class_logits"), "class logits")
        expectClose(t.boxRegression, try expected.values("box_regression"), "box regression")
    }

    @Test func detectionsAndMasksMatchPyTorch() throws {
        let expected = try Fixture.expected("maskrcnn")
        let model = try #require(try Fixture.model("maskrcnn") as? MaskRCNN)
        let tile = try expected.tile()
        let t = try model.trace(tile)
        let artifact = try model.run(tile)
        #expect(artifact.detections.count == t.detections.count && artifact.masks.count == t.detections.count)
        // labels come from the trace: a class-specific box need not be its proposal's best class
        let labels = try expected.values("labels")
        #expect(t.detections.map(\.label) == labels.map { Int($0) })
        let plain = zip(t.detections, artifact.detections).map { c, d in
            Detection(box: d.box, score: d.score, classProbabilities: (0..<3).map { $0 == c.label ? 1 : 0 })
        }
        try expectSameDetections(plain, expected, checkProbabilities: false)
        let probs = try expected.values("probabilities")
        #expect(zip(artifact.detections.flatMap(\.classProbabilities), probs).allSatisfy { abs($0 - $1) < 1e-3 })

        let wantLogits = try expected.values("mask_logits"), wantMasks = try expected.values("masks")
        expectClose(t.maskLogits.flatMap { $0 }, wantLogits, "mask logits")
        let got = artifact.masks.flatMap { $0.values.map { Float($0) / 255 } }
        #expect(got.count == wantMasks.count)
        let agree = zip(got, wantMasks).filter { ($0 >= 0.5) == ($1 >= 0.5) }.count
        #expect(Double(agree) / Double(max(got.count, 1)) > 0.999)
        #expect(zip(got, wantMasks).allSatisfy { abs($0 - $1) <= 0.5 / 255 + 1e-3 })
        #expect(artifact.masks.allSatisfy { $0.width == 28 && $0.height == 28 && $0.channels == 1 })
    }
}
