import CTIFF
import Foundation

/// Writes a TIFF with libtiff: the variants a plate may hold, made from real pixels.
public struct TIFFWriter {
    public var bits = 16
    public var samplesPerPixel = 1
    public var photometric = PHOTOMETRIC_MINISBLACK
    public var compression = COMPRESSION_NONE
    public var tile: Int?
    public var bigTIFF = false
    public var sampleFormat = SAMPLEFORMAT_UINT

    public init(bits: Int = 16, samplesPerPixel: Int = 1, photometric: Int32 = PHOTOMETRIC_MINISBLACK, compression: Int32 = COMPRESSION_NONE,
                tile: Int? = nil, bigTIFF: Bool = false, sampleFormat: Int32 = SAMPLEFORMAT_UINT) {
        self.bits = bits
        self.samplesPerPixel = samplesPerPixel
        self.photometric = photometric
        self.compression = compression
        self.tile = tile
        self.bigTIFF = bigTIFF
        self.sampleFormat = sampleFormat
    }

    /// `pages` of `width`x`height`, each `samplesPerPixel` interleaved samples a pixel, as raw
    /// little-endian bytes of `bits` each.
    public func write(_ pages: [[UInt8]], width: Int, height: Int, to path: String) throws {
        guard let tiff = TIFFOpen(path, bigTIFF ? "w8" : "w") else { throw TestFailure("cannot create \(path)") }
        defer { TIFFClose(tiff) }
        for page in pages {
            _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_IMAGEWIDTH), UInt32(width))
            _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_IMAGELENGTH), UInt32(height))
            _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_BITSPERSAMPLE), UInt16(bits))
            _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_SAMPLESPERPIXEL), UInt16(samplesPerPixel))
            _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_PHOTOMETRIC), UInt16(photometric))
            _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_COMPRESSION), UInt16(compression))
            _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_PLANARCONFIG), UInt16(PLANARCONFIG_CONTIG))
            _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_SAMPLEFORMAT), UInt16(sampleFormat))
            if photometric == PHOTOMETRIC_PALETTE {
                var ramp = (0..<(1 << bits)).map { UInt16($0 * 257) }
                var g = ramp, b = ramp
                _ = ctiff_set_colormap(tiff, &ramp, &g, &b)
            }
            let rowBytes = (width * samplesPerPixel * bits + 7) / 8
            if let tile {
                _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_TILEWIDTH), UInt32(tile))
                _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_TILELENGTH), UInt32(tile))
                let pixelBytes = samplesPerPixel * bits / 8
                var buffer = [UInt8](repeating: 0, count: tile * tile * pixelBytes)
                for y0 in stride(from: 0, to: height, by: tile) {
                    for x0 in stride(from: 0, to: width, by: tile) {
                        for i in buffer.indices { buffer[i] = 0 }
                        for dy in 0..<min(tile, height - y0) {
                            let columns = min(tile, width - x0) * pixelBytes
                            let src = (y0 + dy) * rowBytes + x0 * pixelBytes
                            buffer.replaceSubrange(dy * tile * pixelBytes..<(dy * tile * pixelBytes + columns), with: page[src..<src + columns])
                        }
                        guard TIFFWriteTile(tiff, &buffer, UInt32(x0), UInt32(y0), 0, 0) >= 0 else { throw TestFailure("tile write failed") }
                    }
                }
            } else {
                _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_ROWSPERSTRIP), 16)
                var row = [UInt8](repeating: 0, count: rowBytes)
                for y in 0..<height {
                    row.replaceSubrange(0..<rowBytes, with: page[y * rowBytes..<(y + 1) * rowBytes])
                    guard TIFFWriteScanline(tiff, &row, UInt32(y), 0) >= 0 else { throw TestFailure("row write failed") }
                }
            }
            guard TIFFWriteDirectory(tiff) != 0 else { throw TestFailure("directory write failed") }
        }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public func littleEndian(_ samples: [UInt16]) -> [UInt8] {
    samples.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
}

