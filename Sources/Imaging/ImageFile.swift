import Foundation

public enum ImageFormat: String, Sendable, Codable {
    case png = "PNG"
    case tiff = "TIFF"
}

/// What a file's header says, checked before any pixel is decoded.
public struct ImageHeader: Sendable, Equatable {
    public var format: ImageFormat
    public var width: Int
    public var height: Int
    public var bitDepth: Int
    /// Images in the file (TIFF pages); 1 for PNG.
    public var pages: Int

    public init(format: ImageFormat, width: Int, height: Int, bitDepth: Int, pages: Int) {
        self.format = format
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.pages = pages
    }
}

/// The image files plateseg reads: 8- and 16-bit gray PNG and TIFF, told apart by their first
/// bytes, not their names.
public enum ImageFile {
    /// Fields above this many pixels are refused from the header, before anything is allocated
    /// (a 16-bit field of this size already takes 512 MB).
    public static let maxPixels = 1 << 28

    /// Names a plate scan picks up.
    public static func isImageName(_ name: String) -> Bool {
        ["png", "tif", "tiff"].contains(PathName.fileExtension(name).lowercased())
    }

    public static func format(of data: Data) -> ImageFormat? {
        let head = [UInt8](data.prefix(8))
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return .png }
        // "II*\0", "MM\0*" (TIFF) and "II+\0", "MM\0+" (BigTIFF).
        if head.count >= 4, (head[0] == 0x49 && head[1] == 0x49 && (head[2] == 42 || head[2] == 43) && head[3] == 0)
            || (head[0] == 0x4D && head[1] == 0x4D && head[2] == 0 && (head[3] == 42 || head[3] == 43)) {
            return .tiff
        }
        return nil
    }

    public static func header(of data: Data, name: String) throws -> ImageHeader {
        switch try format(data, name: name) {
        case .png: return try PNGCodec.header(of: data, name: name)
        case .tiff: return try TIFFCodec.header(of: data, name: name)
        }
    }

    /// Decodes page `page` (TIFF; 0 is the first) into samples, refusing what is not gray.
    public static func decode(_ data: Data, name: String, page: Int = 0) throws -> SampleImage {
        switch try format(data, name: name) {
        case .png: return try PNGCodec.decodeSamples(data, name: name)
        case .tiff: return try TIFFCodec.decode(data, name: name, page: page)
        }
    }

    public static func read(_ path: String, page: Int = 0) throws -> SampleImage {
        try decode(contents(of: path), name: path, page: page)
    }

    /// The file's bytes; when they cannot be read, the system's own reason (a symbolic link
    /// loop, a permission, a missing file), which Foundation's error hides.
    public static func contents(of path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            let fd = open(path, O_RDONLY)
            guard fd < 0 else {
                close(fd)
                throw ImagingError.unreadable(path: path, reason: error.localizedDescription)
            }
            throw ImagingError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
    }

    private static func format(_ data: Data, name: String) throws -> ImageFormat {
        if let format = format(of: data) { return format }
        throw ImagingError.corrupt(path: name, reason: data.isEmpty ? "the file is empty" : "neither a PNG nor a TIFF file (its first bytes say otherwise)")
    }

    static func checkSize(width: Int, height: Int, name: String) throws {
        guard width > 0, height > 0 else { throw ImagingError.corrupt(path: name, reason: "the header says \(width)x\(height) pixels") }
        guard width * height <= maxPixels else {
            throw ImagingError.tooLarge(path: name, width: width, height: height, limit: maxPixels)
        }
    }
}
