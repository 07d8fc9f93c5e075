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

    public init(image: String, contentHash: String, tile: PixelRect, model: String) {
        self.image = image
        self.contentHash = contentHash
        self.tile = tile
        self.model = model
    }
}

public struct MergeJob: Codable, Sendable, Equatable {
    public static let kind = "merge"
    public var image: String
    public var width: Int
    public var height: Int

    public init(image: String, width: Int, height: Int) {
        self.image = image
        self.width = width
        self.height = height
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
