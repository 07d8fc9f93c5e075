import Imaging

/// A network input that is the tile normalised per channel, (pixel / 255 - mean) / std, and
/// then resized bilinearly by the file's `input_scale` (PyTorch's interpolate after
/// torchvision's normalisation): above 1, small cells cover more feature pixels.
/// Reference: `scaled_size` in training/archs/upernet.py.
struct ScaledInput {
    let mean: [Float]
    let std: [Float]
    let channels: Int
    /// nil or 1: the tile's own size.
    let scale: Double?

    /// Refuses a scale outside (0, 4], naming the file.
    init(mean: [Float], std: [Float], channels: Int, scale: Double?, file: String) throws {
        if let s = scale, !(s > 0 && s <= 4) {
            throw ModelError.badMetadata(file: file, reason: "input_scale \(s) (expected above 0 and at most 4)")
        }
        self.mean = mean
        self.std = std
        self.channels = channels
        self.scale = scale
    }

    /// The network's input size for a tile, rounded half up as the reference rounds.
    func size(_ tile: GrayImage) -> (height: Int, width: Int) {
        let s = scale ?? 1
        return (Int(Double(tile.height) * s + 0.5), Int(Double(tile.width) * s + 0.5))
    }

    /// (1, channels, height, width) at `size(tile)`.
    func tensor(_ tile: GrayImage) throws -> Tensor {
        let C = channels
        let t = try Tensor(shape: [1, C, tile.height, tile.width])
        let a = (0..<C).map { 1 / (255 * std[$0]) }
        let b = (0..<C).map { -mean[$0] / std[$0] }
        for (i, v) in tile.pixels.enumerated() {
            for c in 0..<C { t.data[i * C + c] = Float(v) * a[c] + b[c] }
        }
        let (h, w) = size(tile)
        return (h, w) == (tile.height, tile.width) ? t : try Ops.resize(t, height: h, width: w, mode: .bilinear)
    }
}
