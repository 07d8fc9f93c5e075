import Imaging
import Testing
@testable import Models

@Suite struct TileShapeTests {
    /// Tiles of any size run: tiny, odd, non-square, wider than tall. Outputs stay in tile
    /// coordinates and semantic maps at tile resolution.
    @Test(arguments: ["yolox", "upernet", "maskrcnn"]) func oddTileSizesRun(fixture: String) throws {
        let model = try Fixture.model(fixture)
        let image = try Fixture.expected(fixture).tile()
        for (w, h) in [(1, 1), (7, 33), (65, 17), (250, 180)] {
            let tile = image.crop(PixelRect(x: 3, y: 5, width: w, height: h))
            let a = try model.run(tile)
            #expect(a.tile == PixelRect(x: 0, y: 0, width: w, height: h))
            for d in a.detections {
                #expect(d.box.x0 >= 0 && d.box.y0 >= 0 && d.box.x1 <= Float(w) && d.box.y1 <= Float(h), "\(fixture) \(w)x\(h): \(d.box)")
                #expect(abs(d.classProbabilities.reduce(0, +) - 1) < 1e-4)
            }
            if let s = a.semantic { #expect(s.width == w && s.height == h && s.channels == 4) }
            #expect(a.masks.isEmpty || a.masks.count == a.detections.count)
        }
    }
}
