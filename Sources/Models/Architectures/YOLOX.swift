import Foundation
import Imaging

/// YOLOX (Ge et al. 2021): CSPDarknet with a Focus stem, PAFPN, and a decoupled head per stride
/// (8, 16, 32). Tensor names as Megvii's repository; see training/archs/yolox.py for the reference.
struct YOLOXConfig: Codable, Sendable {
    var depth: Double
    var width: Double
    var depthwise: Bool
    var inChannels: Int
    var classes: [String]
    var strides: [Int]
    var mean: [Float]
    var std: [Float]
    var padValue: Float
    var padMultiple: Int
    var scoreThreshold: Float
    var nmsThreshold: Float
    var maxDetections: Int
    var bnEps: Float
    /// The engine runs SiLU (Megvii's default), the one activation training/ writes. Absent: SiLU.
    var activation: String?
    /// µm per pixel of the images the network was trained on (`--pixel-size` resamples other
    /// fields to it). Absent: not recorded, and fields are taken at their own scale.
    var pixelSize: Double?

    /// Python's round() (half to even) and int() (truncation), as the reference computes widths.
    func channels(_ c: Int) -> Int { Int(Double(c) * width) }
    var baseDepth: Int { max(Int((depth * 3).rounded(.toNearestOrEven)), 1) }
    var neckDepth: Int { Int((depth * 3).rounded(.toNearestOrEven)) }
}

/// conv + folded BN + SiLU, or its depthwise-separable variant (3x3 depthwise then 1x1). Every
/// reader of a unit's output is a convolution, a max pool, a nearest upsampling or a
/// concatenation, so in int8 the units pass int8 to each other (the heads' last convolutions,
/// read by the decoding, write floats).
private struct ConvUnit {
    let layers: [Conv2D]

    /// `residual` is added after the last activation (Megvii's Bottleneck shortcut).
    init(_ w: Weights, in cin: Int, out cout: Int, kernel: Int, stride: Int = 1, depthwise: Bool, eps: Float, addsResidual: Bool = false) throws {
        let last: [PostOp] = addsResidual ? [.silu, .add] : [.silu]
        if depthwise && kernel > 1 {
            layers = [
                try w.scoped("dconv").convBN(in: cin, out: cin, kernel: kernel, stride: stride, groups: cin, eps: eps, postOps: [.silu],
                                             keepsInt8: true),
                try w.scoped("pconv").convBN(in: cin, out: cout, kernel: 1, eps: eps, postOps: last, keepsInt8: true),
            ]
        } else {
            layers = [try w.convBN(in: cin, out: cout, kernel: kernel, stride: stride, eps: eps, postOps: last, keepsInt8: true)]
        }
    }

    func callAsFunction(_ x: Tensor, residual: Tensor? = nil) throws -> Tensor {
        var y = x
        for (i, l) in layers.enumerated() { y = try l(y, residual: i == layers.count - 1 ? residual : nil) }
        return y
    }

    /// The unit on `parts` joined along channels, for a unit that is their only reader: in int8
    /// each part is quantised into its channels of the first layer's input, with no join in
    /// between (`Conv2D.callAsFunction(concatenating:)`).
    func callAsFunction(concatenating parts: [Tensor]) throws -> Tensor {
        var y = try layers[0](concatenating: parts)
        for l in layers.dropFirst() { y = try l(y) }
        return y
    }
}

private struct Bottleneck {
    let conv1: ConvUnit
    let conv2: ConvUnit
    let shortcut: Bool

    init(_ w: Weights, channels c: Int, shortcut: Bool, depthwise: Bool, eps: Float) throws {
        conv1 = try ConvUnit(w.scoped("conv1"), in: c, out: c, kernel: 1, depthwise: false, eps: eps)
        conv2 = try ConvUnit(w.scoped("conv2"), in: c, out: c, kernel: 3, depthwise: depthwise, eps: eps, addsResidual: shortcut)
        self.shortcut = shortcut
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv2(conv1(x), residual: shortcut ? x : nil)
    }
}

/// Cross-stage partial layer: half the channels through n bottlenecks, half straight, then merged.
private struct CSPLayer {
    let conv1: ConvUnit
    let conv2: ConvUnit
    let conv3: ConvUnit
    let m: [Bottleneck]

    init(_ w: Weights, in cin: Int, out cout: Int, n: Int, shortcut: Bool = true, depthwise: Bool, eps: Float) throws {
        let hidden = cout / 2
        conv1 = try ConvUnit(w.scoped("conv1"), in: cin, out: hidden, kernel: 1, depthwise: false, eps: eps)
        conv2 = try ConvUnit(w.scoped("conv2"), in: cin, out: hidden, kernel: 1, depthwise: false, eps: eps)
        conv3 = try ConvUnit(w.scoped("conv3"), in: 2 * hidden, out: cout, kernel: 1, depthwise: false, eps: eps)
        m = try (0..<n).map { try Bottleneck(w.scoped("m").scoped($0), channels: hidden, shortcut: shortcut, depthwise: depthwise, eps: eps) }
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var a = try conv1(x)
        for b in m { a = try b(a) }
        return try conv3(concatenating: [a, conv2(x)])
    }
}

/// Spatial pyramid pooling with max pools 5, 9, 13 (stride 1). Max pools of 9 and 13 equal two and
/// three chained 5x5 pools (padding counts as -inf either way), which is how they are computed.
private struct SPPBottleneck {
    let conv1: ConvUnit
    let conv2: ConvUnit

    init(_ w: Weights, in cin: Int, out cout: Int, eps: Float) throws {
        conv1 = try ConvUnit(w.scoped("conv1"), in: cin, out: cin / 2, kernel: 1, depthwise: false, eps: eps)
        conv2 = try ConvUnit(w.scoped("conv2"), in: cin / 2 * 4, out: cout, kernel: 1, depthwise: false, eps: eps)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try conv1(x)
        let p5 = try Ops.maxPool(y, kernel: 5, stride: 1, padding: 2)
        let p9 = try Ops.maxPool(p5, kernel: 5, stride: 1, padding: 2)
        let p13 = try Ops.maxPool(p9, kernel: 5, stride: 1, padding: 2)
        return try conv2(concatenating: [y, p5, p9, p13])
    }
}

private struct CSPDarknet {
    let stem: ConvUnit  // Focus: the space-to-depth input is built by the model's preprocessing
    let dark2: (ConvUnit, CSPLayer)
    let dark3: (ConvUnit, CSPLayer)
    let dark4: (ConvUnit, CSPLayer)
    let dark5: (ConvUnit, SPPBottleneck, CSPLayer)

    init(_ w: Weights, _ c: YOLOXConfig) throws {
        let base = c.channels(64), n = c.baseDepth, dw = c.depthwise, eps = c.bnEps
        stem = try ConvUnit(w.scoped("stem.conv"), in: c.inChannels * 4, out: base, kernel: 3, depthwise: false, eps: eps)
        func stage(_ i: Int, _ cin: Int, _ cout: Int, _ depth: Int) throws -> (ConvUnit, CSPLayer) {
            let s = w.scoped("dark\(i)")
            return (try ConvUnit(s.scoped("0"), in: cin, out: cout, kernel: 3, stride: 2, depthwise: dw, eps: eps),
                    try CSPLayer(s.scoped("1"), in: cout, out: cout, n: depth, depthwise: dw, eps: eps))
        }
        dark2 = try stage(2, base, base * 2, n)
        dark3 = try stage(3, base * 2, base * 4, n * 3)
        dark4 = try stage(4, base * 4, base * 8, n * 3)
        let s5 = w.scoped("dark5")
        dark5 = (try ConvUnit(s5.scoped("0"), in: base * 8, out: base * 16, kernel: 3, stride: 2, depthwise: dw, eps: eps),
                 try SPPBottleneck(s5.scoped("1"), in: base * 16, out: base * 16, eps: eps),
                 try CSPLayer(s5.scoped("2"), in: base * 16, out: base * 16, n: n, shortcut: false, depthwise: dw, eps: eps))
    }

    /// C3, C4, C5 at strides 8, 16, 32.
    func callAsFunction(_ focused: Tensor) throws -> (Tensor, Tensor, Tensor) {
        let x = try dark2.1(dark2.0(stem(focused)))
        let c3 = try dark3.1(dark3.0(x))
        let c4 = try dark4.1(dark4.0(c3))
        let c5 = try dark5.2(dark5.1(dark5.0(c4)))
        return (c3, c4, c5)
    }
}

/// Path-aggregation FPN: top-down then bottom-up fusion of C3..C5.
private struct PAFPN {
    let backbone: CSPDarknet
    let lateralConv0: ConvUnit
    let c3P4: CSPLayer
    let reduceConv1: ConvUnit
    let c3P3: CSPLayer
    let buConv2: ConvUnit
    let c3N3: CSPLayer
    let buConv1: ConvUnit
    let c3N4: CSPLayer

    init(_ w: Weights, _ c: YOLOXConfig) throws {
        let (c3, c4, c5) = (c.channels(256), c.channels(512), c.channels(1024))
        let n = c.neckDepth, dw = c.depthwise, eps = c.bnEps
        backbone = try CSPDarknet(w.scoped("backbone"), c)
        lateralConv0 = try ConvUnit(w.scoped("lateral_conv0"), in: c5, out: c4, kernel: 1, depthwise: false, eps: eps)
        c3P4 = try CSPLayer(w.scoped("C3_p4"), in: 2 * c4, out: c4, n: n, shortcut: false, depthwise: dw, eps: eps)
        reduceConv1 = try ConvUnit(w.scoped("reduce_conv1"), in: c4, out: c3, kernel: 1, depthwise: false, eps: eps)
        c3P3 = try CSPLayer(w.scoped("C3_p3"), in: 2 * c3, out: c3, n: n, shortcut: false, depthwise: dw, eps: eps)
        buConv2 = try ConvUnit(w.scoped("bu_conv2"), in: c3, out: c3, kernel: 3, stride: 2, depthwise: dw, eps: eps)
        c3N3 = try CSPLayer(w.scoped("C3_n3"), in: 2 * c3, out: c4, n: n, shortcut: false, depthwise: dw, eps: eps)
        buConv1 = try ConvUnit(w.scoped("bu_conv1"), in: c4, out: c4, kernel: 3, stride: 2, depthwise: dw, eps: eps)
        c3N4 = try CSPLayer(w.scoped("C3_n4"), in: 2 * c4, out: c5, n: n, shortcut: false, depthwise: dw, eps: eps)
    }

    func callAsFunction(_ x: Tensor) throws -> [Tensor] {
        let (x2, x1, x0) = try backbone(x)
        func up(_ t: Tensor) throws -> Tensor { try Ops.resize(t, height: t.h * 2, width: t.w * 2, mode: .nearest) }
        let fpnOut0 = try lateralConv0(x0)
        let fOut0 = try c3P4(Ops.concat([up(fpnOut0), x1]))
        let fpnOut1 = try reduceConv1(fOut0)
        let panOut2 = try c3P3(Ops.concat([up(fpnOut1), x2]))
        let panOut1 = try c3N3(Ops.concat([buConv2(panOut2), fpnOut1]))
        let panOut0 = try c3N4(Ops.concat([buConv1(panOut1), fpnOut0]))
        return [panOut2, panOut1, panOut0]
    }
}

/// Decoupled head of one level: a classification branch and a regression branch (which also
/// predicts objectness).
private struct HeadLevel {
    let stem: ConvUnit
    let clsConvs: [ConvUnit]
    let regConvs: [ConvUnit]
    let clsPred: Conv2D
    let regPred: Conv2D
    let objPred: Conv2D

    init(_ w: Weights, level i: Int, in cin: Int, _ c: YOLOXConfig) throws {
        let hidden = c.channels(256), eps = c.bnEps
        stem = try ConvUnit(w.scoped("stems").scoped(i), in: cin, out: hidden, kernel: 1, depthwise: false, eps: eps)
        clsConvs = try (0..<2).map {
            try ConvUnit(w.scoped("cls_convs").scoped(i).scoped($0), in: hidden, out: hidden, kernel: 3, depthwise: c.depthwise, eps: eps)
        }
        regConvs = try (0..<2).map {
            try ConvUnit(w.scoped("reg_convs").scoped(i).scoped($0), in: hidden, out: hidden, kernel: 3, depthwise: c.depthwise, eps: eps)
        }
        clsPred = try w.conv("cls_preds.\(i)", in: hidden, out: c.classes.count, kernel: 1)
        regPred = try w.conv("reg_preds.\(i)", in: hidden, out: 4, kernel: 1)
        objPred = try w.conv("obj_preds.\(i)", in: hidden, out: 1, kernel: 1)
    }

    /// (box regression, objectness logit, class logits)
    func callAsFunction(_ x: Tensor) throws -> (Tensor, Tensor, Tensor) {
        let s = try stem(x)
        var cls = s, reg = s
        for l in clsConvs { cls = try l(cls) }
        for l in regConvs { reg = try l(reg) }
        return (try regPred(reg), try objPred(reg), try clsPred(cls))
    }
}

/// The raw head maps of one level: per cell, 4 box regressions, 1 objectness logit, C class logits.
struct YOLOXLevelOutput: Sendable {
    let stride: Int
    let height: Int
    let width: Int
    /// Planar (4 + 1 + C, height, width), as the reference's `torch.cat([reg, obj, cls], 1)`.
    let values: [Float]
}

public final class YOLOX: Model, @unchecked Sendable {
    public let kind = ModelKind.yolox
    public var classes: [String] { config.classes }
    public var pixelSize: Double? { config.pixelSize }
    let config: YOLOXConfig
    private let neck: PAFPN
    private let head: [HeadLevel]

    init(weights: Weights, config: YOLOXConfig) throws {
        guard config.strides == [8, 16, 32] else {
            throw ModelError.badMetadata(file: weights.file.path, reason: "YOLOX strides \(config.strides) (only 8, 16, 32)")
        }
        if let a = config.activation, a != "silu" {
            throw ModelError.badMetadata(file: weights.file.path, reason: "activation \"\(a)\" (this engine runs YOLOX with SiLU only)")
        }
        guard config.mean.count == config.inChannels, config.std.count == config.inChannels else {
            throw ModelError.badMetadata(file: weights.file.path, reason: "mean/std need one value per input channel (\(config.inChannels))")
        }
        self.config = config
        neck = try PAFPN(weights.scoped("backbone"), config)
        head = try [256, 512, 1024].enumerated().map {
            try HeadLevel(weights.scoped("head"), level: $0.offset, in: config.channels($0.element), config)
        }
    }

    /// Normalises, pads bottom/right to a multiple of 32 with `padValue`, and applies the Focus
    /// space-to-depth: channel (phase * C + c) at (y, x) is input pixel (2y + dy, 2x + dx), phases
    /// in Megvii's order (0,0), (1,0), (0,1), (1,1) as (dy, dx).
    func preprocess(_ tile: GrayImage) throws -> Tensor {
        let m = config.padMultiple
        let H = (tile.height + m - 1) / m * m, W = (tile.width + m - 1) / m * m
        let C = config.inChannels
        let t = try Tensor(shape: [1, 4 * C, H / 2, W / 2])
        let p = t.data
        let phases = [(0, 0), (1, 0), (0, 1), (1, 1)]
        let scale = (0..<C).map { 1 / (255 * config.std[$0]) }
        let shift = (0..<C).map { -config.mean[$0] / config.std[$0] }
        for y in 0..<(H / 2) {
            for x in 0..<(W / 2) {
                let out = p + (y * (W / 2) + x) * 4 * C
                for (k, (dy, dx)) in phases.enumerated() {
                    let sy = 2 * y + dy, sx = 2 * x + dx
                    let v = sy < tile.height && sx < tile.width ? Float(tile.pixels[sy * tile.width + sx]) : config.padValue
                    for c in 0..<C { out[k * C + c] = v * scale[c] + shift[c] }
                }
            }
        }
        return t
    }

    func rawOutputs(_ tile: GrayImage) throws -> [YOLOXLevelOutput] {
        let feats = try neck(preprocess(tile))
        return try zip(head, feats).enumerated().map { i, pair in
            let (reg, obj, cls) = try pair.0(pair.1)
            return YOLOXLevelOutput(stride: config.strides[i], height: reg.h, width: reg.w,
                                    values: try reg.nchw() + obj.nchw() + cls.nchw())
        }
    }

    public func run(_ tile: GrayImage) throws -> TileArtifact {
        let detections = decode(try rawOutputs(tile), imageWidth: tile.width, imageHeight: tile.height)
        return TileArtifact(model: kind.rawValue, tile: PixelRect(x: 0, y: 0, width: tile.width, height: tile.height),
                            classes: classes, detections: detections)
    }

    /// Grid decode (centre = (offset + cell) x stride, size = exp(t) x stride), score = objectness x
    /// best class, threshold, class-aware NMS, clip to the tile (dropping boxes left without area).
    func decode(_ levels: [YOLOXLevelOutput], imageWidth: Int, imageHeight: Int) -> [Detection] {
        let C = config.classes.count
        let W = Float(imageWidth), H = Float(imageHeight)
        var candidates: [Candidate] = []
        for level in levels {
            let plane = level.height * level.width, s = Float(level.stride)
            level.values.withUnsafeBufferPointer { v in
                for y in 0..<level.height {
                    for x in 0..<level.width {
                        let i = y * level.width + x
                        var best = 0
                        for c in 1..<C where v[(5 + c) * plane + i] > v[(5 + best) * plane + i] { best = c }
                        let score = sigmoid(v[4 * plane + i]) * sigmoid(v[(5 + best) * plane + i])
                        guard score >= config.scoreThreshold else { continue }
                        let probs = (0..<C).map { sigmoid(v[(5 + $0) * plane + i]) }
                        let total = probs.reduce(0, +)
                        let cx = (v[i] + Float(x)) * s, cy = (v[plane + i] + Float(y)) * s
                        let w = expf(v[2 * plane + i]) * s, h = expf(v[3 * plane + i]) * s
                        candidates.append(Candidate(box: Box(x0: cx - w / 2, y0: cy - h / 2, x1: cx + w / 2, y1: cy + h / 2),
                                                    score: score, label: best, probabilities: probs.map { $0 / total }))
                    }
                }
            }
        }
        // Suppression uses the unclipped boxes (as the reference); a box wholly in the padding has no
        // area left in the tile and does not count towards maxDetections.
        func inTile(_ c: Candidate) -> Bool { c.box.clipped(width: W, height: H).area > 0 }
        return nonMaximumSuppression(candidates, threshold: config.nmsThreshold, byClass: true,
                                     limit: config.maxDetections, counts: inTile)
            .filter(inTile)
            .map { Detection(box: $0.box.clipped(width: W, height: H), score: $0.score, classProbabilities: $0.probabilities) }
    }
}

@inline(__always)
func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
