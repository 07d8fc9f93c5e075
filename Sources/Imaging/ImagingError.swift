import Foundation

/// A failure reading or writing image data; every case names the file (or artifact) and what to do.
public enum ImagingError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    case unreadable(path: String, reason: String)
    case unsupportedFormat(path: String, reason: String)
    case corrupt(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case badArtifact(name: String, reason: String)
    case tooLarge(path: String, width: Int, height: Int, limit: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "\(path): cannot read the file (\(reason)); check that it exists and is readable"
        case let .unsupportedFormat(path, reason):
            return "\(path): unsupported image (\(reason)); plateseg reads 8- and 16-bit grayscale PNG and TIFF — export the channel to segment as gray, or convert it, e.g. `convert in.tif -colorspace gray out.tif`"
        case let .corrupt(path, reason):
            return "\(path): not a readable image (\(reason)); the file is damaged or truncated — copy it again from the microscope"
        case let .writeFailed(path, reason):
            return "\(path): cannot write (\(reason)); check free disk space and permissions"
        case let .tooLarge(path, width, height, limit):
            return "\(path): \(width)x\(height) pixels, more than the \(limit / 1_000_000) million a field may have; export the well as several fields (tiles) or at a lower resolution"
        case let .badArtifact(name, reason):
            return "artifact \(name): \(reason); rerun the job that produced it (`plateseg retry --job ID`)"
        }
    }

    public var errorDescription: String? { description }
}
