import Imaging
import Testing
@testable import Models

@Suite struct YOLOXParityTests {
    /// The plain variant and the depthwise one (nano's layout: 3x3 depthwise + 1x1 units).
    @Test(arguments: ["yolox", "yolox_dw"]) func rawHeadMapsMatchPyTorch(fixture: String) throws {
        let expected = try Fixture.expected(fixture)
        let model = try #require(try Fixture.model(fixture) as? YOLOX)
        #expect(model.config.depthwise == (fixture == "yolox_dw"))
        let levels = try model.rawOutputs(expected.tile())
        #expect(levels.map(\.stride) == [8, 16, 32])
        for (i, level) in levels.enumerated() {
            let shape = try expected.shape("level\(i)")
            #expect([level.values.count / (level.height * level.width), level.height, level.width] == shape)
            expectClose(level.values, try expected.values("level\(i)"), "level \(i)")
        }
    }

    @Test(arguments: ["yolox", "yolox_dw"]) func detectionsMatchPyTorch(fixture: String) throws {
        let expected = try Fixture.expected(fixture)
        let model = try Fixture.model(fixture)
        #expect(model.kind == .yolox)
        #expect(model.classes == ["shsy5y", "astro", "cort"])
        let tile = try expected.tile()
        let artifact = try model.run(tile)
        #expect(artifact.masks.isEmpty && artifact.semantic == nil)
        #expect(artifact.tile == PixelRect(x: 0, y: 0, width: tile.width, height: tile.height))
        try expectSameDetections(artifact.detections, expected)
        for d in artifact.detections {
            #expect(d.box.x0 >= 0 && d.box.y0 >= 0 && d.box.x1 <= Float(tile.width) && d.box.y1 <= Float(tile.height))
        }
    }

    @Test func repeatedRunsReuseTheirPrimitivesAndAgree() throws {
        let expected = try Fixture.expected("yolox")
        let model = try Fixture.model("yolox")
        let tile = try expected.tile()
        let first = try model.run(tile)
        let second = try model.run(tile)
        #expect(first == second)
    }
}
