import Foundation
import Imaging
import Synchronization

/// The field the last infer job made ready for the networks (read, checked against its submitted
/// hash, decoded, brought to the networks' intensities and scale), kept for the next job: a
/// worker's consecutive jobs are mostly tiles of one field (27 for a 2048x2048 field and three
/// networks), and each would otherwise read and decode it whole.
final class FieldCache: Sendable {
    struct Key: Equatable, Sendable {
        var path: String
        /// A file rewritten since it was read and checked is read and checked again.
        var file: FileIdentity
        var contentHash: String
        var page: Int
        var intensity: IntensityRule
        var scale: Double?
    }

    private let last = Mutex<(key: Key, image: GrayImage)?>(nil)

    /// The field of `key`, made by `prepare` unless it is the one kept.
    func image(for key: Key, prepare: () throws -> GrayImage) throws -> GrayImage {
        if let kept = last.withLock({ $0?.key == key ? $0?.image : nil }) { return kept }
        let image = try prepare()
        last.withLock { $0 = (key, image) }
        return image
    }
}
