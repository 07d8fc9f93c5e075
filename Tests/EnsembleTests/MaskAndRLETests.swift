import Foundation
import Imaging
import Testing

@Suite struct MaskTests {
    @Test func geometryOfABoxLocalMask() {
        // An L shape: 3 pixels in row 5 (x 10...12) and one below its first pixel.
        var bits = [UInt8](repeating: 0, count: 20)
        bits[1 * 5 + 1] = 1; bits[1 * 5 + 2] = 1; bits[1 * 5 + 3] = 1; bits[2 * 5 + 1] = 1
        let m = Mask(imageWidth: 50, imageHeight: 40, window: PixelRect(x: 9, y: 4, width: 5, height: 4), bits: bits)
        #expect(m.area == 4)
        #expect(m.box == PixelRect(x: 10, y: 5, width: 3, height: 2))
        #expect(m.centroid.x == 10.75 && m.centroid.y == 5.25)
        #expect(m[10, 6] && m[12, 5] && !m[11, 6] && !m[0, 0])
        #expect(m.imagePixels().reduce(0) { $0 + Int($1) } == 4)
    }

    @Test func windowPixelsOutsideTheImageAreDropped() {
        let m = Mask(imageWidth: 10, imageHeight: 10, window: PixelRect(x: -2, y: 8, width: 4, height: 4),
                     bits: [UInt8](repeating: 1, count: 16))
        #expect(m.area == 4)
        #expect(m.box == PixelRect(x: 0, y: 8, width: 2, height: 2))
    }

    @Test func iouOfOverlappingRectangles() {
        let a = rect(0, 0, 10, 10), b = rect(5, 0, 10, 10)
        #expect(a.intersectionArea(b) == 50)
        #expect(abs(a.iou(b) - 50.0 / 150.0) < 1e-12)
        #expect(a.iou(rect(50, 50, 3, 3)) == 0)
        #expect(Mask(imageWidth: 100, imageHeight: 100).iou(Mask(imageWidth: 100, imageHeight: 100)) == 0)
    }
}

@Suite struct RLETests {
    @Test func kaggleRLEIsOneBasedAndRowMajor() throws {
        // Pixel 1 is (0,0); "12 3" on a 10-wide image is row 1, x 1...3.
        let m = try KaggleRLE.decode("1 1 12 3", width: 10, height: 5)
        #expect(m.area == 4)
        #expect(m[0, 0] && m[1, 1] && m[3, 1] && !m[4, 1] && !m[0, 1])
        #expect(KaggleRLE.encode(m) == "1 1 12 3")
    }

    @Test func kaggleRunsMayWrapRows() throws {
        let m = try KaggleRLE.decode("9 4", width: 10, height: 3)  // x 8,9 of row 0 and x 0,1 of row 1
        #expect(m.area == 4 && m[8, 0] && m[9, 0] && m[0, 1] && m[1, 1])
        #expect(KaggleRLE.encode(m) == "9 4")
    }

    @Test func everyDemoAnnotationRoundTrips() throws {
        let text = try String(contentsOfFile: demoTruthPath, encoding: .utf8)
        var checked = 0
        for line in text.split(whereSeparator: \.isNewline).dropFirst() {
            let f = line.split(separator: ",")
            let m = try KaggleRLE.decode(f[1], width: Int(f[2])!, height: Int(f[3])!)
            let again = try KaggleRLE.decode(KaggleRLE.encode(m), width: m.imageWidth, height: m.imageHeight)
            #expect(again == m)
            let coco = COCORLE(mask: m)
            #expect(coco.mask() == m)
            #expect(try COCORLE(compressed: coco.compressedString, width: 704, height: 520) == coco)
            checked += 1
        }
        #expect(checked == 1551)
    }

    @Test func malformedKaggleRLEIsRefusedWithTheReason() {
        #expect(throws: RLEError.self) { try KaggleRLE.decode("1 2 3", width: 10, height: 10) }
        #expect(throws: RLEError.self) { try KaggleRLE.decode("0 2", width: 10, height: 10) }
        #expect(throws: RLEError.self) { try KaggleRLE.decode("99 3", width: 10, height: 10) }
        #expect(throws: RLEError.self) { try KaggleRLE.decode("5 x", width: 10, height: 10) }
        #expect(throws: RLEError.self) { try KaggleRLE.decode("5 0", width: 10, height: 10) }
        #expect(throws: RLEError.self) { try KaggleRLE.decode("5 9223372036854775807", width: 10, height: 10) }
        #expect(throws: RLEError.self) { try KaggleRLE.decode("1 1", width: 1 << 40, height: 1 << 40) }
    }

    @Test func cocoCountsAreColumnMajorStartingWithBackground() throws {
        // 4 wide, 3 high; set (1,0), (1,1), (2,2). Column-major indices: 3, 4, 8.
        var px = [UInt8](repeating: 0, count: 12)
        px[0 * 4 + 1] = 1; px[1 * 4 + 1] = 1; px[2 * 4 + 2] = 1
        let m = Mask(imageWidth: 4, imageHeight: 3, pixels: px)
        let rle = COCORLE(mask: m)
        #expect(rle.counts == [3, 2, 3, 1, 3])
        #expect(rle.mask() == m)
        #expect(COCORLE(mask: Mask(imageWidth: 4, imageHeight: 3)).counts == [12])
        let first = Mask(imageWidth: 4, imageHeight: 3, pixels: [1] + [UInt8](repeating: 0, count: 11))
        #expect(COCORLE(mask: first).counts == [0, 1, 11])
        let last = Mask(imageWidth: 4, imageHeight: 3, pixels: [UInt8](repeating: 0, count: 11) + [1])
        #expect(COCORLE(mask: last).counts == [11, 1])
        #expect(try COCORLE(compressed: COCORLE(mask: last).compressedString, width: 4, height: 3).mask() == last)
        #expect(throws: RLEError.self) { try COCORLE(width: 4, height: 3, counts: [3, 2]) }
        #expect(throws: RLEError.self) { try COCORLE(width: 4, height: 3, counts: [Int.max, Int.max, 12]) }
    }

    @Test func compressedStringsMatchPycocotools() throws {
        let reference = try Reference.load()
        let text = try String(contentsOfFile: demoTruthPath, encoding: .utf8)
        let rows = text.split(whereSeparator: \.isNewline).dropFirst().map { $0.split(separator: ",") }
            .filter { $0[0] == reference.coco.image }.prefix(reference.coco.first_masks.count)
        for (row, expected) in zip(rows, reference.coco.first_masks) {
            let m = try KaggleRLE.decode(row[1], width: 704, height: 520)
            #expect(COCORLE(mask: m).compressedString == expected)
            #expect(try COCORLE(compressed: expected, width: 704, height: 520).mask() == m)
        }
        #expect(rows.count == 3)
    }

    @Test func damagedCompressedStringsAreRefused() {
        #expect(throws: RLEError.self) { try COCORLE(compressed: "Qa_6 4R", width: 704, height: 520) }
        #expect(throws: RLEError.self) { try COCORLE(compressed: "Qa_64R`04M1", width: 704, height: 520) }
        #expect(throws: RLEError.self) { try COCORLE(compressed: "o", width: 704, height: 520) }  // ends inside a count
    }
}

@Suite struct OverlayTests {
    @Test func outlinesAreDrawnInTheCellTypeColour() throws {
        let image = try PNGCodec.readGray(demoImagePath("0323e81d23d9"))
        let cell = rect(100, 100, 10, 10, image: (704, 520))
        let rgba = Overlay.render(image, instances: [(cell, "astro")])
        func pixel(_ x: Int, _ y: Int) -> [UInt8] { Array(rgba[(4 * (y * 704 + x))..<(4 * (y * 704 + x) + 4)]) }
        #expect(pixel(100, 105) == [230, 159, 0, 255])  // left edge
        #expect(pixel(109, 109) == [230, 159, 0, 255])  // corner
        let g = image[105, 105]
        #expect(pixel(105, 105) == [g, g, g, 255])      // interior keeps the image
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("overlay-\(UUID()).png").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try Overlay.write(image, instances: [(cell, "cort")], to: out)
        let header = try PNGCodec.readHeader(out)
        #expect(header.width == 704 && header.height == 520 && header.color)
        #expect(throws: OverlayError.self) { try Overlay.write(image, instances: [(rect(1, 1, 3, 3, image: (100, 100)), "cort")], to: out) }
    }
}
