import CTIFF
import Foundation
import Synchronization

/// Gray TIFF through libtiff: 8 and 16 bits, strips or tiles, any compression libtiff decodes
/// (none, LZW, Deflate, PackBits, …), classic and BigTIFF, one page of a multi-page file.
/// Everything else is refused with what the file holds.
public enum TIFFCodec {
    private static let handlers = Mutex(false)

    /// libtiff's handlers are process-wide; they are set once, before the first file.
    private static func open(_ bytes: UnsafeRawBufferPointer, name: String) throws -> OpaquePointer {
        handlers.withLock { installed in
            if !installed { ctiff_install_handlers() }
            installed = true
        }
        ctiff_clear_error()
        guard let tiff = ctiff_open_memory(bytes.baseAddress, bytes.count, name) else {
            throw ImagingError.corrupt(path: name, reason: lastError(or: "libtiff cannot open it"))
        }
        return tiff
    }

    private static func lastError(or fallback: String) -> String {
        let message = String(cString: ctiff_last_error())
        return message.isEmpty ? fallback : message
    }

    public static func header(of data: Data, name: String) throws -> ImageHeader {
        try data.withUnsafeBytes { bytes in
            let tiff = try open(bytes, name: name)
            defer { TIFFClose(tiff) }
            let layout = try Layout(tiff, name: name)
            return ImageHeader(format: .tiff, width: layout.width, height: layout.height, bitDepth: layout.bits,
                               pages: Int(TIFFNumberOfDirectories(tiff)))
        }
    }

    public static func decode(_ data: Data, name: String, page: Int = 0) throws -> SampleImage {
        try data.withUnsafeBytes { bytes in
            let tiff = try open(bytes, name: name)
            defer { TIFFClose(tiff) }
            let pages = Int(TIFFNumberOfDirectories(tiff))
            guard page >= 0, page < pages else {
                throw ImagingError.unsupportedFormat(path: name, reason: "page \(page + 1) asked for, the file has \(pages)")
            }
            if page > 0, TIFFSetDirectory(tiff, UInt32(page)) == 0 {
                throw ImagingError.corrupt(path: name, reason: lastError(or: "page \(page + 1) cannot be read"))
            }
            let layout = try Layout(tiff, name: name)
            var samples = [UInt16](repeating: 0, count: layout.width * layout.height)
            try samples.withUnsafeMutableBufferPointer { out in
                if TIFFIsTiled(tiff) != 0 {
                    try readTiles(tiff, layout, into: out, name: name)
                } else {
                    try readRows(tiff, layout, into: out, name: name)
                }
            }
            if layout.whiteIsZero {
                let top = UInt16(layout.bits == 16 ? 65535 : 255)
                for i in samples.indices { samples[i] = top - samples[i] }
            }
            return SampleImage(width: layout.width, height: layout.height, bitDepth: layout.bits, samples: samples)
        }
    }

    /// The current page's geometry, checked to be one gray channel of 8 or 16 unsigned bits.
    private struct Layout {
        var width = 0, height = 0, bits = 0
        var whiteIsZero = false

        init(_ tiff: OpaquePointer, name: String) throws {
            var w: UInt32 = 0, h: UInt32 = 0
            guard ctiff_get_u32(tiff, UInt32(TIFFTAG_IMAGEWIDTH), &w) != 0, ctiff_get_u32(tiff, UInt32(TIFFTAG_IMAGELENGTH), &h) != 0 else {
                throw ImagingError.corrupt(path: name, reason: "no image size in the TIFF header")
            }
            var bits: UInt16 = 1, perPixel: UInt16 = 1, format: UInt16 = 1, photometric: UInt16 = 1, extra: UInt16 = 0
            _ = ctiff_get_u16_defaulted(tiff, UInt32(TIFFTAG_BITSPERSAMPLE), &bits)
            _ = ctiff_get_u16_defaulted(tiff, UInt32(TIFFTAG_SAMPLESPERPIXEL), &perPixel)
            _ = ctiff_get_u16_defaulted(tiff, UInt32(TIFFTAG_SAMPLEFORMAT), &format)
            _ = ctiff_get_extra_samples(tiff, &extra)
            if ctiff_get_u16(tiff, UInt32(TIFFTAG_PHOTOMETRIC), &photometric) == 0 { photometric = UInt16(PHOTOMETRIC_MINISBLACK) }
            switch Int32(photometric) {
            case PHOTOMETRIC_MINISBLACK, PHOTOMETRIC_MINISWHITE: break
            case PHOTOMETRIC_PALETTE: throw Self.refused(name, "a palette (indexed colour) image")
            case PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR, PHOTOMETRIC_SEPARATED, PHOTOMETRIC_CIELAB:
                throw Self.refused(name, "a colour image (\(perPixel) samples per pixel)")
            default: throw Self.refused(name, "photometric interpretation \(photometric)")
            }
            guard perPixel == 1 else {
                throw Self.refused(name, extra > 0 ? "a gray image with an extra (alpha) channel" : "\(perPixel) samples per pixel")
            }
            guard format == UInt16(SAMPLEFORMAT_UINT) || format == UInt16(SAMPLEFORMAT_VOID) else {
                throw Self.refused(name, format == UInt16(SAMPLEFORMAT_IEEEFP) ? "\(bits)-bit floating-point samples" : "\(bits)-bit signed samples")
            }
            guard bits == 8 || bits == 16 else {
                throw Self.refused(name, bits == 1 ? "a 1-bit (black and white) image" : "\(bits)-bit samples")
            }
            try ImageFile.checkSize(width: Int(w), height: Int(h), name: name)
            width = Int(w)
            height = Int(h)
            self.bits = Int(bits)
            whiteIsZero = Int32(photometric) == PHOTOMETRIC_MINISWHITE
        }

        func copy(from buffer: UnsafeRawPointer, count: Int, to out: UnsafeMutablePointer<UInt16>) {
            if bits == 16 {
                out.update(from: buffer.assumingMemoryBound(to: UInt16.self), count: count)
            } else {
                let bytes = buffer.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { out[i] = UInt16(bytes[i]) }
            }
        }

        static func refused(_ name: String, _ what: String) -> ImagingError {
            .unsupportedFormat(path: name, reason: "\(what) in a TIFF")
        }
    }

    private static func readRows(_ tiff: OpaquePointer, _ layout: Layout, into out: UnsafeMutableBufferPointer<UInt16>,
                                 name: String) throws {
        let rowBytes = Int(TIFFScanlineSize(tiff))
        guard rowBytes >= layout.width * layout.bits / 8 else { throw ImagingError.corrupt(path: name, reason: "its rows are shorter than its width") }
        let row = UnsafeMutableRawPointer.allocate(byteCount: rowBytes, alignment: 16)
        defer { row.deallocate() }
        for y in 0..<layout.height {
            guard TIFFReadScanline(tiff, row, UInt32(y), 0) >= 0 else {
                throw ImagingError.corrupt(path: name, reason: lastError(or: "row \(y + 1) of \(layout.height) cannot be read (truncated?)"))
            }
            layout.copy(from: row, count: layout.width, to: out.baseAddress! + y * layout.width)
        }
    }

    private static func readTiles(_ tiff: OpaquePointer, _ layout: Layout, into out: UnsafeMutableBufferPointer<UInt16>,
                                  name: String) throws {
        var tileWidth: UInt32 = 0, tileHeight: UInt32 = 0
        guard ctiff_get_u32(tiff, UInt32(TIFFTAG_TILEWIDTH), &tileWidth) != 0, ctiff_get_u32(tiff, UInt32(TIFFTAG_TILELENGTH), &tileHeight) != 0,
              tileWidth > 0, tileHeight > 0 else {
            throw ImagingError.corrupt(path: name, reason: "a tiled TIFF without a tile size")
        }
        let tw = Int(tileWidth), th = Int(tileHeight)
        let tileBytes = Int(TIFFTileSize(tiff))
        guard tileBytes >= tw * th * layout.bits / 8 else { throw ImagingError.corrupt(path: name, reason: "its tiles are smaller than their size") }
        let tile = UnsafeMutableRawPointer.allocate(byteCount: tileBytes, alignment: 16)
        defer { tile.deallocate() }
        let row = UnsafeMutablePointer<UInt16>.allocate(capacity: tw)
        defer { row.deallocate() }
        for y0 in stride(from: 0, to: layout.height, by: th) {
            for x0 in stride(from: 0, to: layout.width, by: tw) {
                guard TIFFReadTile(tiff, tile, UInt32(x0), UInt32(y0), 0, 0) >= 0 else {
                    throw ImagingError.corrupt(path: name, reason: lastError(or: "the tile at \(x0),\(y0) cannot be read (truncated?)"))
                }
                let columns = min(tw, layout.width - x0)
                for dy in 0..<min(th, layout.height - y0) {
                    layout.copy(from: tile + dy * tw * layout.bits / 8, count: tw, to: row)
                    (out.baseAddress! + (y0 + dy) * layout.width + x0).update(from: row, count: columns)
                }
            }
        }
    }
}
