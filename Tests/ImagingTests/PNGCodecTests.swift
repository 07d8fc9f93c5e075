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

    /// 16-bit samples come through exactly (checked against an independent zlib + filter decode):
    /// no gamma applied, as libpng's simplified API would.
    @Test func sixteenBitSamplesAreReadExactly() throws {
        let path = repositoryRoot.appendingPathComponent("Tests/ImagingTests/Fixtures/gray16.png").path
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(try ImageFile.header(of: data, name: path) == ImageHeader(format: .png, width: 8, height: 4, bitDepth: 16, pages: 1))
        let image = try ImageFile.decode(data, name: path)
        #expect(image.bitDepth == 16 && image.samples.reduce(0) { $0 + Int($1) } == 910_400)
        #expect(image.samples.prefix(4) == [0, 8000, 16000, 24000] && image.samples.max() == 56900)
    }

    @Test func aRealPNGReadsTheSameThroughEitherPath() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: demoImage))
        #expect(try ImageFile.decode(data, name: demoImage) == SampleImage(try PNGCodec.readGray(demoImage)))
    }

    @Test func colourAndAlphaPNGsAreRefusedSayingWhatTheyAre() throws {
        let gray = try PNGCodec.readGray(demoImage).crop(PixelRect(x: 0, y: 0, width: 32, height: 32))
        let path = scratchFolder().appendingPathComponent("rgba.png").path
        try PNGCodec.writeRGBA(width: 32, height: 32, rgba: gray.pixels.flatMap { [$0, $0, $0, 255] }, to: path)
        #expect(throws: ImagingError.unsupportedFormat(path: path, reason: "a colour PNG")) { try ImageFile.read(path) }
    }

    @Test func missingFileIsUnreadable() {
        #expect(throws: ImagingError.unreadable(path: "/no/such/file.png", reason: "no such file")) {
            try PNGCodec.readGray("/no/such/file.png")
        }
    }

    @Test(arguments: [("palette.png", "a palette (indexed colour) PNG"), ("bilevel.png", "a 1-bit (black and white) PNG")])
    func palettesAndBilevelPNGsAreRefusedSayingWhatTheyAre(file: String, what: String) {
        let path = repositoryRoot.appendingPathComponent("Tests/ImagingTests/Fixtures/\(file)").path
        #expect(throws: ImagingError.unsupportedFormat(path: path, reason: what)) { try ImageFile.read(path) }
    }

    /// Its header says 30000x30000 (900 MB of samples); the file is 109 bytes. Refused from the
    /// header with what to do, before any sample buffer exists.
    @Test func anEnormousPNGHeaderIsRefusedBeforeAllocating() throws {
        let path = repositoryRoot.appendingPathComponent("Tests/ImagingTests/Fixtures/enormous-header.png").path
        let error = try #require(throws: ImagingError.self) { try ImageFile.read(path) }
        #expect(error == .tooLarge(path: path, width: 30000, height: 30000, limit: 268_435_456))
        #expect(error.description.contains("export the well as several fields"))
    }

    /// Foundation says only "error 256"; the reason a user can act on is the system's.
    @Test func aSymbolicLinkLoopAndADanglingLinkSayWhy() throws {
        let dir = scratchFolder()
        let a = dir.appendingPathComponent("A01.png").path, b = dir.appendingPathComponent("A02.png").path
        try FileManager.default.createSymbolicLink(atPath: a, withDestinationPath: b)
        try FileManager.default.createSymbolicLink(atPath: b, withDestinationPath: a)
        #expect(throws: ImagingError.unreadable(path: a, reason: "Too many levels of symbolic links")) { try ImageFile.read(a) }
        let dangling = dir.appendingPathComponent("A03.png").path
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: dir.appendingPathComponent("gone.png").path)
        #expect(throws: ImagingError.unreadable(path: dangling, reason: "No such file or directory")) { try ImageFile.read(dangling) }
    }
}
