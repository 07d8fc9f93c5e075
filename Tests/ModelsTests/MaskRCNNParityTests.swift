import Foundation
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

    /// A class-agnostic file holds one mask channel and every detection reads it. Here that channel
    /// is the fixture's channel of one class: detections of that class get the fixture's logits,
    /// and boxes, scores and labels do not change.
    @Test func classAgnosticMaskHeadReadsItsOneChannel() throws {
        let file = try SafeTensorsFile(path: Fixture.path("maskrcnn.safetensors"))
        let tile = try Fixture.expected("maskrcnn").tile()
        let reference = try #require(try Fixture.model("maskrcnn") as? MaskRCNN).trace(tile)
        let labels = reference.detections.map(\.label)
        let label = try #require((0..<3).max { a, b in labels.count { $0 == a } < labels.count { $0 == b } })
        let logits = "roi_heads.mask_predictor.mask_fcn_logits."

        func variant(agnostic: Bool, keepingAllChannels: Bool) throws -> String {
            var b = SafeTensorsBuilder()
            for name in file.entries.keys.sorted() {
                let e = file.entries[name]!
                let values = try file.floats(name, shape: e.shape)
                if name.hasPrefix(logits) && !keepingAllChannels {
                    let per = values.count / e.shape[0]
                    b.add(name, f32: Array(values[(label + 1) * per..<(label + 2) * per]), shape: [1] + e.shape.dropFirst())
                } else {
                    b.add(name, f32: values, shape: e.shape)
                }
            }
            var meta = try #require(JSONSerialization.jsonObject(with: Data(file.metadata["plateseg"]!.utf8)) as? [String: Any])
            meta["class_agnostic_masks"] = agnostic
            b.metadata = ["plateseg": String(decoding: try JSONSerialization.data(withJSONObject: meta), as: UTF8.self)]
            return try b.write("maskrcnn-agnostic-\(agnostic)-\(keepingAllChannels).safetensors")
        }

        let model = try #require(try ModelLoader.load(path: variant(agnostic: true, keepingAllChannels: false)) as? MaskRCNN)
        let t = try model.trace(tile)
        #expect(t.detections.map(\.label) == labels)
        #expect(zip(t.detections, reference.detections).allSatisfy { $0.box == $1.box && $0.score == $1.score })
        #expect(t.maskLogits.count == reference.maskLogits.count)
        let same = zip(t.maskLogits, reference.maskLogits).enumerated().filter { labels[$0.offset] == label }
        #expect(!same.isEmpty)
        for (_, (got, want)) in same { expectClose(got, want, "mask logits of class \(label)") }
        let others = zip(t.maskLogits, reference.maskLogits).enumerated().filter { labels[$0.offset] != label }
        #expect(others.isEmpty || others.contains { $0.element.0 != $0.element.1 }, "other classes read the one channel too")

        // a file that says agnostic but keeps a channel per class is refused, naming the tensor
        let mismatched = try variant(agnostic: true, keepingAllChannels: true)
        #expect { try ModelLoader.load(path: mismatched) } throws: { e in
            guard case let ModelError.badTensor(path, tensor, _) = e else { return false }
            return path == mismatched && tensor.hasPrefix(logits)
        }
    }

    /// `input_scale` 1.5: the network sees the tile bilinearly scaled (as PyTorch's interpolate)
    /// and boxes come back in tile pixels (training/parity/make_fixtures.py, "scaled.*"). The
    /// fixture's objectness and class logits are scaled down there by powers of two, so scores
    /// do not saturate into ties; the same here.
    @Test func scaledInputMatchesPyTorch() throws {
        let expected = try Fixture.expected("maskrcnn")
        let factors: [String: Float] = ["rpn.head.cls_logits.": 0.125, "roi_heads.box_predictor.cls_score.": 0.0625]
        let scaled = try Fixture.variant(of: "maskrcnn", as: "maskrcnn-scaled.safetensors", factors: factors) { $0["input_scale"] = 1.5 }
        let model = try #require(try ModelLoader.load(path: scaled) as? MaskRCNN)
        let tile = try expected.tile()
        #expect(model.inputSize(tile) == (270, 375))
        let found = try model.detect(tile)
        // boxes 85 px tall decoded through exp(): float rounding reaches a few thousandths, and
        // 5.1e-3 where oneDNN picks its AVX-512 kernels (a scale error would move them by pixels)
        try expectSameBoxMasked(found, expected, "scaled", boxTolerance: 1e-2)
        #expect(found.detections.allSatisfy { $0.box.x1 <= Float(tile.width) && $0.box.y1 <= Float(tile.height) })

        Fixture.expectRefused(try Fixture.variant(of: "maskrcnn", as: "maskrcnn-scale-0.safetensors") { $0["input_scale"] = 0 },
                              naming: "input_scale")
    }
}
