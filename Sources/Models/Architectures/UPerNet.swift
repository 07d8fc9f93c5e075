import Imaging

/// UPerNet (Xiao et al. 2018): ResNet (torchvision names, dilated late stages) + mmsegmentation's
/// UPerHead: a pyramid pooling module on C5, FPN laterals fused top-down, every level upsampled
/// to 1/4 and fused, a 1x1 classifier; bilinear upsampling to the tile and softmax. With
/// `input_scale` the normalised tile is first resized bilinearly by that factor (small cells then
/// span more output pixels) and the logits go straight back to the tile's size.
/// Reference: training/archs/upernet.py.
struct UPerNetConfig: Codable, Sendable {
    var depth: Int
    var dilation: [Bool]
    var baseWidth: Int
    var channels: Int
    var poolScales: [Int]
    var inChannels: Int
    var classes: [String]
    var semanticChannels: [String]
    var mean: [Float]
    var std: [Float]
    var bnEps: Float
    /// Absent in files written before it existed: 1.
    var inputScale: Double?
    /// Also look at the mirror image and average the two looks' probabilities
    /// (training/archs/upernet.py `predict_tile`). Absent: false.
    var testTimeFlip: Bool?
    /// µm per pixel of the images the network was trained on (`--pixel-size` resamples other
    /// fields to it). Absent: not recorded, and fields are taken at their own scale.
    var pixelSize: Double?
}

/// mmsegmentation's UPerHead.
private struct UPerHead {
    /// Pyramid pooling: adaptive average pool to s x s, 1x1 conv, upsample back to C5's size.
    let psp: [(scale: Int, conv: Conv2D)]
    let bottleneck: Conv2D
    let lateralConvs: [Conv2D]
    let fpnConvs: [Conv2D]
    let fpnBottleneck: Conv2D
    let convSeg: Conv2D

    init(_ w: Weights, inChannels: [Int], _ c: UPerNetConfig) throws {
        let ch = c.channels, eps = c.bnEps
        psp = try c.poolScales.enumerated().map { i, s in
            (s, try w.scoped("psp_modules").scoped(i).scoped("1").convBN(in: inChannels[3], out: ch, kernel: 1, eps: eps, postOps: [.relu]))
        }
        bottleneck = try w.scoped("bottleneck").convBN(in: inChannels[3] + c.poolScales.count * ch, out: ch, kernel: 3, eps: eps, postOps: [.relu])
        // The top-down sum is fused into each lateral conv: relu(bn(conv(C_i))) + upsampled upper level.
        lateralConvs = try (0..<3).map {
            try w.scoped("lateral_convs").scoped($0).convBN(in: inChannels[$0], out: ch, kernel: 1, eps: eps, postOps: [.relu, .add])
        }
        fpnConvs = try (0..<3).map { try w.scoped("fpn_convs").scoped($0).convBN(in: ch, out: ch, kernel: 3, eps: eps, postOps: [.relu]) }
        fpnBottleneck = try w.scoped("fpn_bottleneck").convBN(in: 4 * ch, out: ch, kernel: 3, eps: eps, postOps: [.relu])
        convSeg = try w.conv("conv_seg", in: ch, out: c.semanticChannels.count, kernel: 1)
    }

    func pyramidPooling(_ c5: Tensor) throws -> Tensor {
        var branches = [c5]
        for (scale, conv) in psp {
            let pooled = try conv(Ops.adaptiveAveragePool(c5, size: scale))
            branches.append(try Ops.resize(pooled, height: c5.h, width: c5.w, mode: .bilinear))
        }
        return try bottleneck(concatenating: branches)
    }

    /// Logits at the resolution of C2.
    func callAsFunction(_ feats: [Tensor]) throws -> Tensor {
        var laterals = [Tensor](repeating: try pyramidPooling(feats[3]), count: 4)
        for i in stride(from: 2, through: 0, by: -1) {
            let upper = try Ops.resize(laterals[i + 1], height: feats[i].h, width: feats[i].w, mode: .bilinear)
            laterals[i] = try lateralConvs[i](feats[i], residual: upper)
        }
        var outs = try (0..<3).map { try fpnConvs[$0](laterals[$0]) } + [laterals[3]]
        for i in 1..<4 { outs[i] = try Ops.resize(outs[i], height: outs[0].h, width: outs[0].w, mode: .bilinear) }
        return try convSeg(fpnBottleneck(concatenating: outs))
    }
}

public final class UPerNet: Model, @unchecked Sendable {
    public let kind = ModelKind.upernet
    public var classes: [String] { config.classes }
    public var pixelSize: Double? { config.pixelSize }
    let config: UPerNetConfig
    private let scaledInput: ScaledInput
    private let backbone: ResNetBody
    private let decodeHead: UPerHead

    init(weights: Weights, config: UPerNetConfig) throws {
        guard config.semanticChannels == ["background"] + config.classes else {
            throw ModelError.badMetadata(file: weights.file.path, reason: "semantic_channels must be background then the classes")
        }
        guard config.mean.count == config.inChannels, config.std.count == config.inChannels else {
            throw ModelError.badMetadata(file: weights.file.path, reason: "mean/std need one value per input channel (\(config.inChannels))")
        }
        scaledInput = try ScaledInput(mean: config.mean, std: config.std, channels: config.inChannels,
                                      scale: config.inputScale, file: weights.file.path)
        self.config = config
        backbone = try ResNetBody(weights.scoped("backbone"), depth: config.depth, inChannels: config.inChannels,
                                  dilation: config.dilation, baseWidth: config.baseWidth, eps: config.bnEps)
        decodeHead = try UPerHead(weights.scoped("decode_head"), inChannels: backbone.outChannels, config)
    }

    /// The network's input size for a tile (scaled by `inputScale`).
    func inputSize(_ tile: GrayImage) -> (height: Int, width: Int) { scaledInput.size(tile) }

    /// Class logits at 1/4 of the network's input (the tile scaled by `inputScale`), background first.
    func logits(_ tile: GrayImage) throws -> Tensor {
        try decodeHead(backbone(scaledInput.tensor(tile)))
    }

    /// Per-pixel probabilities at tile resolution, planar (channels, height, width).
    func probabilities(_ tile: GrayImage) throws -> Tensor {
        let full = try Ops.resize(logits(tile).floats(), height: tile.height, width: tile.width, mode: .bilinear)
        Ops.softmaxChannels(full)
        return full
    }

    /// What the tile's semantic map is: one look, or with test-time flip the mean of the tile's
    /// and its mirror image's probabilities (mirrored back), planar (channels, height, width).
    func tileProbabilities(_ tile: GrayImage) throws -> [Float] {
        var direct = try probabilities(tile).nchw()
        guard config.testTimeFlip == true else { return direct }
        let mirror = try probabilities(tile.mirroredLeftRight).nchw()
        let w = tile.width
        for row in 0..<(direct.count / w) {
            let base = row * w
            for x in 0..<w { direct[base + x] = 0.5 * (direct[base + x] + mirror[base + w - 1 - x]) }
        }
        return direct
    }

    public func run(_ tile: GrayImage) throws -> TileArtifact {
        let p = try tileProbabilities(tile)
        return TileArtifact(model: kind.rawValue, tile: PixelRect(x: 0, y: 0, width: tile.width, height: tile.height),
                            classes: classes,
                            semantic: ProbabilityMap(channels: config.semanticChannels.count, width: tile.width, height: tile.height, probabilities: p))
    }
}
