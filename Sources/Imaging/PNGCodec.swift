import CPNG
import Foundation

/// What a PNG's header says, read without decoding the pixels.
public struct PNGHeader: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let sixteenBit: Bool
    public let color: Bool
}

/// PNG reading and writing through libpng's simplified `png_image` API.
public enum PNGCodec {
    public static func readHeader(_ path: String) throws -> PNGHeader {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw failure(path: path, image: &image)
        }
        defer { png_image_free(&image) }
        return header(of: image)
    }

    /// Decodes an 8-bit grayscale PNG. Colour is converted to gray; 16-bit files are refused
    /// because libpng's 16→8 conversion applies a display gamma that would distort intensities.
    public static func readGray(_ path: String) throws -> GrayImage {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ImagingError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ImagingError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        return try decodeGray(data, name: path)
    }

    /// Any PNG as 8-bit RGB, 3 bytes a pixel, row-major (a screenshot, an overlay).
    public static func readRGB(_ path: String) throws -> (width: Int, height: Int, rgb: [UInt8]) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else { throw failure(path: path, image: &image) }
        let h = header(of: image)
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR)
        var rgb = [UInt8](repeating: 0, count: h.width * h.height * 3)
        let finished = rgb.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw failure(path: path, image: &image) }
        return (h.width, h.height, rgb)
    }

    public static func decodeGray(_ data: Data, name: String) throws -> GrayImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { raw in
            png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count)
        }
        guard begun != 0 else { throw failure(path: name, image: &image) }
        let h = header(of: image)
        if h.sixteenBit {
            png_image_free(&image)
            throw ImagingError.unsupportedFormat(path: name, reason: "16-bit samples")
        }
        image.format = UInt32(PNG_FORMAT_GRAY)
        var pixels = [UInt8](repeating: 0, count: h.width * h.height)
        // begin_read_from_memory keeps a pointer into `data`, so finish inside the same borrow.
        let finished = data.withUnsafeBytes { _ in
            pixels.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, nil, out.baseAddress, Int32(h.width), nil)
            }
        }
        guard finished != 0 else { throw failure(path: name, image: &image) }
        return GrayImage(width: h.width, height: h.height, pixels: pixels)
    }

    /// The header of an image file's PNG bytes, as `ImageFile` reports it.
    public static func header(of data: Data, name: String) throws -> ImageHeader {
        let (width, height, depth, colorType) = try readRaw(data, name: name, samples: nil)
        try checkGray(depth: depth, colorType: colorType, name: name)
        try ImageFile.checkSize(width: width, height: height, name: name)
        return ImageHeader(format: .png, width: width, height: height, bitDepth: depth, pages: 1)
    }

    /// Decodes an 8- or 16-bit gray PNG into exact samples (no gamma applied); colour, palette,
    /// alpha and fewer than 8 bits are refused with what the file holds.
    public static func decodeSamples(_ data: Data, name: String) throws -> SampleImage {
        let h = try header(of: data, name: name)
        var samples = [UInt16](repeating: 0, count: h.width * h.height)
        _ = try samples.withUnsafeMutableBufferPointer { out in try readRaw(data, name: name, samples: out.baseAddress) }
        return SampleImage(width: h.width, height: h.height, bitDepth: h.bitDepth, samples: samples)
    }

    private static func readRaw(_ data: Data, name: String, samples: UnsafeMutablePointer<UInt16>?) throws
        -> (width: Int, height: Int, depth: Int, colorType: Int32) {
        var width: UInt32 = 0, height: UInt32 = 0, depth: Int32 = 0, colorType: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let ok = data.withUnsafeBytes { bytes in
            cpng_read_gray(bytes.baseAddress, bytes.count, &width, &height, &depth, &colorType, samples, &message)
        }
        guard ok != 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImagingError.corrupt(path: name, reason: text.isEmpty ? "libpng refused it" : text)
        }
        return (Int(width), Int(height), Int(depth), colorType)
    }

    private static func checkGray(depth: Int, colorType: Int32, name: String) throws {
        switch colorType {
        case PNG_COLOR_TYPE_GRAY:
            guard depth == 8 || depth == 16 else {
                throw ImagingError.unsupportedFormat(path: name, reason: depth == 1 ? "a 1-bit (black and white) PNG" : "\(depth)-bit gray samples in a PNG")
            }
        case PNG_COLOR_TYPE_PALETTE: throw ImagingError.unsupportedFormat(path: name, reason: "a palette (indexed colour) PNG")
        case PNG_COLOR_TYPE_GRAY_ALPHA: throw ImagingError.unsupportedFormat(path: name, reason: "a gray PNG with an alpha channel")
        default: throw ImagingError.unsupportedFormat(path: name, reason: "a colour PNG")
        }
    }

    public static func writeGray(_ gray: GrayImage, to path: String) throws {
        try write(path: path, width: gray.width, height: gray.height, format: UInt32(PNG_FORMAT_GRAY), bytes: gray.pixels)
    }

    /// Writes 8-bit RGBA pixels, row-major, 4 bytes a pixel.
    public static func writeRGBA(width: Int, height: Int, rgba: [UInt8], to path: String) throws {
        precondition(rgba.count == width * height * 4)
        try write(path: path, width: width, height: height, format: UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA), bytes: rgba)
    }

    /// Writes 8-bit RGB pixels, row-major, 3 bytes a pixel.
    public static func writeRGB(width: Int, height: Int, rgb: [UInt8], to path: String) throws {
        precondition(rgb.count == width * height * 3)
        try write(path: path, width: width, height: height, format: UInt32(PNG_FORMAT_FLAG_COLOR), bytes: rgb)
    }

    /// Writes a palette PNG: one byte a pixel indexing `palette` (RGB triples, at most 256).
    public static func writeIndexed(width: Int, height: Int, indices: [UInt8], palette: [UInt8], to path: String) throws {
        precondition(indices.count == width * height && palette.count % 3 == 0 && palette.count <= 768)
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP)
        image.colormap_entries = UInt32(palette.count / 3)
        let ok = indices.withUnsafeBytes { raw in
            palette.withUnsafeBytes { colours in
                png_image_write_to_file(&image, path, 0, raw.baseAddress, 0, colours.baseAddress)
            }
        }
        guard ok != 0 else {
            let message = messageText(&image)
            png_image_free(&image)
            throw ImagingError.writeFailed(path: path, reason: message)
        }
    }

    /// Encodes 8-bit RGBA pixels as PNG bytes in memory (for storing beside the results).
    public static func encodeRGBA(width: Int, height: Int, rgba: [UInt8]) throws -> [UInt8] {
        precondition(rgba.count == width * height * 4)
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        var size = 0
        // First call measures, second writes.
        let measured = rgba.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil) }
        guard measured != 0, size > 0 else {
            let message = messageText(&image)
            png_image_free(&image)
            throw ImagingError.writeFailed(path: "<memory>", reason: message)
        }
        var out = [UInt8](repeating: 0, count: size)
        let ok = rgba.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { png_image_write_to_memory(&image, $0.baseAddress, &size, 0, src.baseAddress, 0, nil) }
        }
        guard ok != 0 else {
            let message = messageText(&image)
            png_image_free(&image)
            throw ImagingError.writeFailed(path: "<memory>", reason: message)
        }
        return Array(out.prefix(size))
    }

    private static func write(path: String, width: Int, height: Int, format: UInt32, bytes: [UInt8]) throws {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format
        let ok = bytes.withUnsafeBytes { raw in
            png_image_write_to_file(&image, path, 0, raw.baseAddress, 0, nil)
        }
        guard ok != 0 else {
            let message = messageText(&image)
            png_image_free(&image)
            throw ImagingError.writeFailed(path: path, reason: message)
        }
    }

    private static func header(of image: png_image) -> PNGHeader {
        PNGHeader(
            width: Int(image.width), height: Int(image.height),
            sixteenBit: image.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0,
            color: image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0)
    }

    private static func failure(path: String, image: inout png_image) -> ImagingError {
        let message = messageText(&image)
        png_image_free(&image)
        if !FileManager.default.fileExists(atPath: path) && !path.hasPrefix("<") {
            return .unreadable(path: path, reason: "no such file")
        }
        return .corrupt(path: path, reason: message.isEmpty ? "libpng refused it" : message)
    }

    private static func messageText(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
