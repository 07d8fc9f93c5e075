import CTIFF
import Foundation
import Imaging
import PlateFixtures
import Testing

let instruments = repositoryRoot.appendingPathComponent("Tests/ImagingTests/Fixtures/instruments")
let imageXpress = instruments.appendingPathComponent("1well-3C-2S-Zmix-T_C07_s1_w1D5F8F51A-3E85-4358-AE51-A465AF87386F.tif").path
let imageXpressDeflate = instruments.appendingPathComponent("Projection-Mix_E07_s1_w1E94C24BD-45E4-450A-9919-257C714278F7.tif").path
let cellomics = instruments.appendingPathComponent("AS_09125_050116030001_D03f00d0.tif").path
let phenix = instruments.appendingPathComponent("r01c01f01p01-ch1sk1fk1fl1.tiff").path

@Suite struct TIFFCodecTests {
    /// Each real export against sums taken by an independent decoder (Python: struct, zlib, and
    /// a PackBits and an LZW decoder written for the purpose).
    @Test(arguments: [
        (imageXpress, 256, 16, "none", 95_112_559, [1036, 1151, 1116, 1122]),
        (imageXpressDeflate, 512, 16, "Deflate", 117_335_419, [167, 176, 152, 155]),
        (cellomics, 512, 8, "PackBits", 4_533_639, [8, 8, 8, 8]),
        (phenix, 1080, 16, "LZW", 166_426_344, [6, 6, 4, 4]),
    ])
    func readsRealInstrumentExports(path: String, size: Int, bits: Int, compression: String, sum: Int, first: [Int]) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(ImageFile.format(of: data) == .tiff)
        let header = try ImageFile.header(of: data, name: path)
        #expect(header == ImageHeader(format: .tiff, width: size, height: size, bitDepth: bits, pages: 1))
        let image = try ImageFile.decode(data, name: path)
        #expect(image.bitDepth == bits && image.width == size && image.height == size)
        #expect(image.samples.reduce(0) { $0 + Int($1) } == sum, "\(compression)")
        #expect(image.samples.prefix(4).map(Int.init) == first)
    }

    /// The same real pixels written by libtiff in every layout plateseg must read: strips and
    /// tiles (with ragged edge tiles), each compression, BigTIFF, and pages of a multi-page file.
    @Test func everyLayoutGivesTheSamePixels() throws {
        let real = try ImageFile.read(imageXpress)
        let crop = SampleImage(width: 200, height: 150, bitDepth: 16,
                               samples: (0..<150).flatMap { y in real.samples[(y * 256)..<(y * 256 + 200)] })
        let bytes = littleEndian(crop.samples)
        let dir = scratchFolder()
        let variants: [(String, TIFFWriter)] = [
            ("strips", TIFFWriter()),
            ("tiles", TIFFWriter(tile: 64)),
            ("lzw-tiles", TIFFWriter(compression: COMPRESSION_LZW, tile: 32)),
            ("deflate", TIFFWriter(compression: COMPRESSION_ADOBE_DEFLATE)),
            ("packbits", TIFFWriter(compression: COMPRESSION_PACKBITS)),
            ("bigtiff", TIFFWriter(compression: COMPRESSION_LZW, bigTIFF: true)),
        ]
        for (name, writer) in variants {
            let path = dir.appendingPathComponent("\(name).tif").path
            try writer.write([bytes], width: 200, height: 150, to: path)
            #expect(try ImageFile.read(path) == crop, "\(name)")
        }
        // Two pages: the first by default, the second when asked for.
        let other = crop.samples.map { 65535 - $0 }
        let multi = dir.appendingPathComponent("pages.tif").path
        try TIFFWriter().write([bytes, littleEndian(other)], width: 200, height: 150, to: multi)
        let data = try Data(contentsOf: URL(fileURLWithPath: multi))
        #expect(try ImageFile.header(of: data, name: multi).pages == 2)
        #expect(try ImageFile.decode(data, name: multi) == crop)
        #expect(try ImageFile.decode(data, name: multi, page: 1).samples == other)
        #expect { try ImageFile.decode(data, name: multi, page: 2) } throws: { "\($0)".contains("page 3 asked for, the file has 2") }
    }

    @Test func eightBitsAndWhiteIsZeroAreRead() throws {
        let real = try ImageFile.read(cellomics)
        let dir = scratchFolder()
        let inverted = dir.appendingPathComponent("miniswhite.tif").path
        try TIFFWriter(bits: 8, photometric: PHOTOMETRIC_MINISWHITE).write([real.samples.map { UInt8(255 - $0) }], width: 512, height: 512, to: inverted)
        #expect(try ImageFile.read(inverted) == real, "white-is-zero is turned the usual way round")
    }

    /// What is not one gray channel of 8 or 16 unsigned bits is refused, saying what the file holds.
    @Test func whatIsNotGrayIsRefusedSayingWhatItIs() throws {
        let real = try ImageFile.read(cellomics)
        let gray = real.samples.prefix(64 * 64).map { UInt8($0) }
        let dir = scratchFolder()
        let cases: [(String, TIFFWriter, [UInt8], String)] = [
            ("rgb", TIFFWriter(bits: 8, samplesPerPixel: 3, photometric: PHOTOMETRIC_RGB), gray.flatMap { [$0, $0, $0] },
             "a colour image (3 samples per pixel) in a TIFF"),
            ("palette", TIFFWriter(bits: 8, photometric: PHOTOMETRIC_PALETTE), gray, "a palette (indexed colour) image in a TIFF"),
            ("bilevel", TIFFWriter(bits: 1), [UInt8](repeating: 0xA5, count: 8 * 64), "a 1-bit (black and white) image in a TIFF"),
            ("float", TIFFWriter(bits: 32, sampleFormat: SAMPLEFORMAT_IEEEFP), gray.flatMap { _ in [0, 0, 0x80, 0x3F] },
             "32-bit floating-point samples in a TIFF"),
            ("signed", TIFFWriter(bits: 16, sampleFormat: SAMPLEFORMAT_INT), gray.flatMap { [$0, 0] }, "16-bit signed samples in a TIFF"),
        ]
        for (name, writer, bytes, reason) in cases {
            let path = dir.appendingPathComponent("\(name).tif").path
            try writer.write([bytes], width: 64, height: 64, to: path)
            let error = try #require(throws: ImagingError.self) { try ImageFile.read(path) }
            #expect(error == .unsupportedFormat(path: path, reason: reason), "\(name)")
            #expect(error.description.contains(path) && error.description.contains("8- and 16-bit grayscale PNG and TIFF"))
        }
    }

    @Test func damagedFilesNameWhatIsWrong() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: phenix))
        let dir = scratchFolder()
        let truncated = dir.appendingPathComponent("truncated.tiff").path
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: truncated))
        #expect { try ImageFile.read(truncated) } throws: { error in
            guard case ImagingError.corrupt(let path, _) = error else { return false }
            return path == truncated
        }
        let empty = dir.appendingPathComponent("empty.tif").path
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(throws: ImagingError.corrupt(path: empty, reason: "the file is empty")) { try ImageFile.read(empty) }
        let text = dir.appendingPathComponent("notes.tif").path
        try Data("plate notes".utf8).write(to: URL(fileURLWithPath: text))
        #expect(throws: ImagingError.corrupt(path: text, reason: "neither a PNG nor a TIFF file (its first bytes say otherwise)")) {
            try ImageFile.read(text)
        }
    }

    /// A header claiming 30000x30000 pixels is refused before anything is allocated.
    @Test func anEnormousHeaderIsRefusedBeforeAllocating() throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: imageXpress))
        // Patch the image width and length entries (tags 256 and 257) of the first IFD.
        let ifd = Int(data[4]) | Int(data[5]) << 8 | Int(data[6]) << 16 | Int(data[7]) << 24
        let entries = Int(data[ifd]) | Int(data[ifd + 1]) << 8
        for i in 0..<entries {
            let at = ifd + 2 + 12 * i
            let tag = Int(data[at]) | Int(data[at + 1]) << 8
            guard tag == 256 || tag == 257 else { continue }
            data[at + 2] = 4  // LONG
            data[at + 3] = 0
            for (k, byte) in [UInt8(0x30), 0x75, 0, 0].enumerated() { data[at + 8 + k] = byte }  // 30000
        }
        #expect(throws: ImagingError.tooLarge(path: "huge.tif", width: 30000, height: 30000, limit: ImageFile.maxPixels)) {
            try ImageFile.header(of: data, name: "huge.tif")
        }
    }
}
