import Imaging
import Testing

@Suite struct TilingTests {
    @Test func wholeImageFitsOneTile() {
        #expect(TileLayout(size: 768, overlap: 96).tiles(width: 704, height: 520) == [PixelRect(x: 0, y: 0, width: 704, height: 520)])
    }

    @Test func tilesOverlapAndEndAtTheEdge() {
        let tiles = TileLayout(size: 512, overlap: 64).tiles(width: 1200, height: 520)
        #expect(tiles.count == 6 && tiles.allSatisfy { $0.width == 512 && $0.height == 512 })
        #expect(tiles.prefix(3).map(\.x) == [0, 448, 688] && tiles.map(\.y) == [0, 0, 0, 8, 8, 8])
        // Every pair of neighbours overlaps by at least the overlap.
        for (a, b) in zip(tiles.prefix(3), tiles.prefix(3).dropFirst()) { #expect(a.maxX - b.x >= 64) }
    }

    @Test func everyPixelIsCovered() {
        let layout = TileLayout(size: 300, overlap: 40)
        for (w, h) in [(704, 520), (301, 299), (1000, 1000)] {
            var covered = [Bool](repeating: false, count: w * h)
            for t in layout.tiles(width: w, height: h) {
                #expect(t.x >= 0 && t.y >= 0 && t.maxX <= w && t.maxY <= h)
                for y in t.y..<t.maxY { for x in t.x..<t.maxX { covered[y * w + x] = true } }
            }
            #expect(covered.allSatisfy { $0 })
        }
    }

    @Test func cropPadsOutsideTheImage() {
        let image = GrayImage(width: 3, height: 2, pixels: [1, 2, 3, 4, 5, 6])
        #expect(image.crop(PixelRect(x: 1, y: 1, width: 3, height: 2)).pixels == [5, 6, 0, 0, 0, 0])
    }
}
