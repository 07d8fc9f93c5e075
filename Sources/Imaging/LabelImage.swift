import CTIFF
import Foundation

/// One field's cells as a label image: each pixel holds the id of the cell it belongs to, 0 the
/// background. Written as a gray TIFF of 16 bits (32 when a field holds more than 65,535
/// cells), the form napari, Cellpose and CellProfiler open as labels.
public struct LabelImage: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var labels: [UInt32]
    public private(set) var largest: UInt32 = 0

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
        labels = [UInt32](repeating: 0, count: width * height)
    }

    /// Paints a cell given as COCO RLE (column-major runs) with `label`; a pixel already painted
    /// keeps its label (stored cells do not overlap; a damaged row cannot take another's pixels).
    public mutating func paint(_ rle: COCORLE, label: UInt32) throws {
        guard rle.width == width, rle.height == height else {
            throw RLEError("a cell of a \(rle.width)x\(rle.height) image cannot be drawn on a \(width)x\(height) field")
        }
        var position = 0
        for (i, count) in rle.counts.enumerated() {
            if i % 2 == 1 {
                for p in position..<(position + count) {
                    let index = (p % height) * width + p / height
                    if labels[index] == 0 { labels[index] = label }
                }
            }
            position += count
        }
        largest = max(largest, label)
    }

    /// Bits a sample needs: 16, or 32 past 65,535 cells.
    public var bitsPerSample: Int { largest > UInt32(UInt16.max) ? 32 : 16 }

    /// Writes the labels as a Deflate-compressed gray TIFF through libtiff.
    public func writeTIFF(to path: String) throws {
        guard let tiff = TIFFOpen(path, "w") else {
            throw ImagingError.writeFailed(path: path, reason: "libtiff cannot create it")
        }
        defer { TIFFClose(tiff) }
        let bits = bitsPerSample
        _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_IMAGEWIDTH), UInt32(width))
        _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_IMAGELENGTH), UInt32(height))
        _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_BITSPERSAMPLE), UInt16(bits))
        _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_SAMPLESPERPIXEL), 1)
        _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_PHOTOMETRIC), UInt16(PHOTOMETRIC_MINISBLACK))
        _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_SAMPLEFORMAT), UInt16(SAMPLEFORMAT_UINT))
        _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_COMPRESSION), UInt16(COMPRESSION_ADOBE_DEFLATE))
        _ = ctiff_set_u16(tiff, UInt32(TIFFTAG_PLANARCONFIG), UInt16(PLANARCONFIG_CONTIG))
        _ = ctiff_set_u32(tiff, UInt32(TIFFTAG_ROWSPERSTRIP), UInt32(max(1, min(height, 65536 / max(1, width * bits / 8)))))
        for y in 0..<height {
            let row = labels[(y * width)..<((y + 1) * width)]
            let written: Int32
            if bits == 16 {
                var samples = row.map { UInt16($0) }
                written = samples.withUnsafeMutableBytes { TIFFWriteScanline(tiff, $0.baseAddress, UInt32(y), 0) }
            } else {
                var samples = Array(row)
                written = samples.withUnsafeMutableBytes { TIFFWriteScanline(tiff, $0.baseAddress, UInt32(y), 0) }
            }
            guard written >= 0 else { throw ImagingError.writeFailed(path: path, reason: "libtiff could not write row \(y)") }
        }
        guard TIFFWriteDirectory(tiff) != 0 else { throw ImagingError.writeFailed(path: path, reason: "libtiff could not finish the file") }
    }
}
