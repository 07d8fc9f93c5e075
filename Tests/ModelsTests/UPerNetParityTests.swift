import Imaging
import Testing
@testable import Models

@Suite struct UPerNetParityTests {
    @Test func logitsMatchPyTorch() throws {
        let expected = try Fixture.expected("upernet")
        let model = try #require(try Fixture.model("upernet") as? UPerNet)
        let logits = try model.logits(expected.tile())
        #expect(Array(logits.shape.dropFirst()) == (try expected.shape("logits")))
        expectClose(try logits.nchw(), try expected.values("logits"), "logits")
    }

    @Test func probabilitiesMatchPyTorchAtTileResolution() throws {
        let expected = try Fixture.expected("upernet")
        let model = try Fixture.model("upernet")
        #expect(model.kind == .upernet)
        let tile = try expected.tile()
        let artifact = try model.run(tile)
        let semantic = try #require(artifact.semantic)
        #expect(semantic.channels == 4 && semantic.width == tile.width && semantic.height == tile.height)
        #expect(artifact.detections.isEmpty)
        let want = try expected.values("probabilities")  // stored as f16
        let wantMap = ProbabilityMap(channels: 4, width: tile.width, height: tile.height, probabilities: want)
        // 8-bit maps: a value may land on the other side of a rounding boundary, never further
        let off = zip(semantic.values, wantMap.values).filter { abs(Int($0) - Int($1)) > 1 }.count
        #expect(off == 0)
        let agree = zip(semantic.values, wantMap.values).filter { $0 == $1 }.count
        #expect(Double(agree) / Double(want.count) > 0.99)

        let full = try #require(model as? UPerNet).probabilities(tile).nchw()
        let maxError = zip(full, want).map { abs($0 - $1) }.max() ?? 0
        #expect(maxError < 1e-3)
    }

    /// `input_scale` 1.5: the normalised tile scaled bilinearly (PyTorch's interpolate), logits
    /// at a quarter of that, probabilities straight back at the tile's size
    /// (training/parity/make_fixtures.py, "scaled.*").
    @Test func scaledInputMatchesPyTorch() throws {
        let expected = try Fixture.expected("upernet")
        let scaled = try Fixture.variant(of: "upernet", as: "upernet-scaled.safetensors") { $0["input_scale"] = 1.5 }
        let model = try #require(try ModelLoader.load(path: scaled) as? UPerNet)
        let tile = try expected.tile()
        #expect(model.inputSize(tile) == (270, 375))
        let logits = try model.logits(tile)
        #expect(Array(logits.shape.dropFirst()) == (try expected.shape("scaled.logits")))
        expectClose(try logits.nchw(), try expected.values("scaled.logits"), "scaled logits")
        let probabilities = try model.probabilities(tile)
        #expect((probabilities.h, probabilities.w) == (tile.height, tile.width))
        let want = try expected.values("scaled.probabilities")
        #expect((zip(try probabilities.nchw(), want).map { abs($0 - $1) }.max() ?? 1) < 1e-3)

        Fixture.expectRefused(try Fixture.variant(of: "upernet", as: "upernet-scale-negative.safetensors") { $0["input_scale"] = -1 },
                              naming: "input_scale")
    }

    /// `test_time_flip`: the stored map is the mean of the tile's and its mirror image's
    /// probabilities (training/archs/upernet.py `predict_tile`, "flipped.probabilities"); about
    /// 3% of the fixture's pixels change class, so one look alone would fail this.
    @Test func testTimeFlipMatchesPyTorch() throws {
        let expected = try Fixture.expected("upernet")
        let flipped = try Fixture.variant(of: "upernet", as: "upernet-flipped.safetensors") { $0["test_time_flip"] = true }
        let model = try ModelLoader.load(path: flipped)
        let tile = try expected.tile()
        let semantic = try #require(try model.run(tile).semantic)
        let want = ProbabilityMap(channels: 4, width: tile.width, height: tile.height,
                                  probabilities: try expected.values("flipped.probabilities"))
        #expect(semantic.values.count == want.values.count)
        #expect(zip(semantic.values, want.values).filter { abs(Int($0) - Int($1)) > 1 }.count == 0)
    }
}
