import Foundation
import Imaging
import Testing

@Suite struct PNGCodecTests {
    @Test func readsARealPhaseContrastImage() throws {
        let image = try PNGCodec.readGray(demoImage)
        #expect(image.width == 704 && image.height == 520)
        // Checked against an independent decode (zlib + PNG filters in Python).
        #expect(image.pixels.reduce(0) { $0 + Int($1) } == 46_858_254)
        #expect(Array(image.pixels.prefix(4)) == [125, 128, 127, 129])
        #expect(image[100, 200] == 129)
        let header = try PNGCodec.readHeader(demoImage)
        #expect(header.width == 704 && header.height == 520 && !header.sixteenBit && !header.color)
    }

    @Test func writeThenReadGivesTheSamePixels() throws {
        let original = try PNGCodec.readGray(demoImage).crop(PixelRect(x: 600, y: 400, width: 200, height: 150))
        let path = scratchFolder().appendingPathComponent("crop.png").path
        try PNGCodec.writeGray(original, to: path)
        #expect(try PNGCodec.readGray(path) == original)
    }

    @Test func truncatedFileIsACorruptErrorNamingTheFile() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: demoImage))
        let path = scratchFolder().appendingPathComponent("truncated.png").path
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: ImagingError.self) { try PNGCodec.readGray(path) }
        guard case .corrupt(let p, _) = error else { Issue.record("expected corrupt, got \(error)"); return }
        #expect(p == path && error.description.contains("truncated"))
    }

    @Test func garbageIsACorruptError() throws {
        let path = scratchFolder().appendingPathComponent("garbage.png").path
        try Data("this is not a png".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ImagingError.self) { try PNGCodec.readGray(path) }
        #expect(throws: ImagingError.self) { try PNGCodec.readHeader(path) }
    }

    @Test func sixteenBitImageIsRefusedWithWhatToDo() throws {
        let path = repositoryRoot.appendingPathComponent("Tests/ImagingTests/Fixtures/gray16.png").path
        #expect(try PNGCodec.readHeader(path).sixteenBit)
        let error = try #require(throws: ImagingError.self) { try PNGCodec.readGray(path) }
        #expect(error == .unsupportedFormat(path: path, reason: "16-bit samples"))
        #expect(error.description.contains("convert"))
    }

    @Test func missingFileIsUnreadable() {
        #expect(throws: ImagingError.unreadable(path: "/no/such/file.png", reason: "no such file")) {
            try PNGCodec.readGray("/no/such/file.png")
        }
    }
}
