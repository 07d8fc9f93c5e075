import Imaging

/// The three architectures of the ensemble.
public enum ModelKind: String, Sendable, CaseIterable, Codable {
    case yolox
    case maskrcnn
    case upernet
}

/// A network that turns one gray tile into its typed output. Normalisation, padding to the
/// stride multiple and un-padding are the model's job; the output is in tile pixel coordinates.
public protocol Model: Sendable {
    var kind: ModelKind { get }
    /// The cell types it tells apart, in output order.
    var classes: [String] { get }
    /// µm per pixel of the training images, when the file records it.
    var pixelSize: Double? { get }
    func run(_ tile: GrayImage) throws -> TileArtifact
}
