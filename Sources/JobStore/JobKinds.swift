import Foundation
import Imaging

/// The arguments of the two kinds of job plateseg runs, as stored in `jobs.args`.
public struct InferJob: Codable, Sendable, Equatable {
    public static let kind = "infer"
    public var image: String
    /// The image's content hash at submission: a file changed since is refused, not segmented
    /// under the old provenance.
    public var contentHash: String
    public var tile: PixelRect
    public var model: String
    /// How the field's samples become the networks' 8-bit input; absent in jobs made before
    /// plates had a rule, which ran their 8-bit images as they were.
    public var intensity: IntensityRule?
    /// The page of a multi-page TIFF that is the field (0 is the first); absent for the first.
    public var page: Int?
    /// The field is resized by this before tiling (`--pixel-size`); `tile` is in the resized
    /// field's pixels. Absent: the field as it is.
    public var scale: Double?

    public init(image: String, contentHash: String, tile: PixelRect, model: String, intensity: IntensityRule? = nil, page: Int? = nil,
                scale: Double? = nil) {
        self.scale = scale
        self.image = image
        self.contentHash = contentHash
        self.tile = tile
        self.model = model
        self.intensity = intensity
        self.page = page
    }
}

public struct MergeJob: Codable, Sendable, Equatable {
    public static let kind = "merge"
    public var image: String
    /// The size the tiles were cut from: the field's, or the resized field's.
    public var width: Int
    public var height: Int
    /// When the field was resized to the networks' pixel size, its own size: the cells are
    /// mapped back to it. Absent: the field was not resized.
    public var fieldWidth: Int?
    public var fieldHeight: Int?

    public init(image: String, width: Int, height: Int, fieldWidth: Int? = nil, fieldHeight: Int? = nil) {
        self.image = image
        self.width = width
        self.height = height
        self.fieldWidth = fieldWidth
        self.fieldHeight = fieldHeight
    }
}

extension Encodable {
    /// Sorted keys, so that the same job always has the same text.
    public func jobArgs() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }
}

extension Decodable {
    public init(jobArgs: String) throws {
        self = try JSONDecoder().decode(Self.self, from: Data(jobArgs.utf8))
    }
}
