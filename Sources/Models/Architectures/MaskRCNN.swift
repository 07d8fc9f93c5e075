import Foundation
import Imaging

/// Mask R-CNN (He et al. 2017) as torchvision's `maskrcnn_resnet50_fpn` family: ResNet + FPN
/// (P2..P6), RPN, multi-level RoIAlign, two-FC box head with class-specific boxes, 4-conv mask
/// head with a 2x2/2 transposed conv. Tensor names and every post-processing rule as torchvision.
/// Reference: training/archs/maskrcnn.py (which never resizes the tile, only pads it to 32).
struct MaskRCNNConfig: Codable, Sendable {
    var depth: Int
    /// Absent in files from before narrow parity bodies existed: torchvision's 64.
    var baseWidth: Int?
    var inChannels: Int
    var classes: [String]
    var fpnChannels: Int
    var representationSize: Int
    var maskChannels: Int
    var anchorSizes: [Float]
    var aspectRatios: [Float]
    var mean: [Float]
    var std: [Float]
    var padMultiple: Int
    /// The normalised tile is padded with zeros, as torchvision does; any other value is refused.
    var padValue: Float?
    var rpnPreNmsTopN: Int
    var rpnPostNmsTopN: Int
    var rpnNmsThreshold: Float
    var scoreThreshold: Float
    var nmsThreshold: Float
    var maxDetections: Int
    var roiAlignAligned: Bool
    var roiSamplingRatio: Int
    var maskSize: Int
    var bnEps: Float
    /// One mask channel for every class, so the box head's guess does not pick the mask's shape.
    /// Absent in files from before it existed: class-specific.
    var classAgnosticMasks: Bool?
    /// Run on the tile and on its mirror image and fuse the two (`FlipFusion`). Absent: off.
    var testTimeFlip: Bool?
    /// The tile is scaled by this (bilinear) before the network, so small cells cover more feature
    /// pixels; boxes come back in tile pixels. Absent: 1.
    var inputScale: Double?
    /// µm per pixel of the images the network was trained on (`--pixel-size` resamples other
    /// fields to it). Absent: not recorded, and fields are taken at their own scale.
    var pixelSize: Double?
}

/// torchvision's FeaturePyramidNetwork with LastLevelMaxPool: P2..P5 from 1x1 laterals summed
/// top-down (nearest upsampling) and 3x3 smoothing, P6 = P5 subsampled by 2.
private struct FPN {
    let inner: [Conv2D]
    let layer: [Conv2D]

    init(_ w: Weights, inChannels: [Int], channels: Int) throws {
        // Each lateral 1x1 conv also adds the upsampled level above (fused post-op), except the top.
        // Laterals are read by convolutions and nearest upsampling (int8 in int8); the 3x3
        // outputs also by RoIAlign, which reads floats.
        inner = try inChannels.enumerated().map { i, c in
            try w.conv("inner_blocks.\(i).0", in: c, out: channels, kernel: 1, postOps: i == inChannels.count - 1 ? [] : [.add], keepsInt8: true)
        }
        layer = try (0..<inChannels.count).map { try w.conv("layer_blocks.\($0).0", in: channels, out: channels, kernel: 3) }
    }

    func callAsFunction(_ c: [Tensor]) throws -> [Tensor] {
        var last = try inner[3](c[3])
        var outs = [try layer[3](last)]
        for i in stride(from: 2, through: 0, by: -1) {
            let topDown = try Ops.resize(last, height: c[i].h, width: c[i].w, mode: .nearest)
            last = try inner[i](c[i], residual: topDown)
            outs.insert(try layer[i](last), at: 0)
        }
        outs.append(try Ops.maxPool(outs[3], kernel: 1, stride: 2, padding: 0))
        return outs
    }
}

/// The RPN head, shared by all levels: 3x3 conv + ReLU, then objectness (A) and deltas (4A).
private struct RPNHead {
    let conv: Conv2D
    let objectness: Conv2D
    let deltas: Conv2D

    init(_ w: Weights, channels: Int, anchors: Int) throws {
        // torchvision before 0.13 (and its published COCO checkpoints) named it rpn.head.conv
        conv = try w.conv(w.layerName("conv.0.0", "conv"), in: channels, out: channels, kernel: 3, postOps: [.relu], keepsInt8: true)
        objectness = try w.conv("cls_logits", in: channels, out: anchors, kernel: 1)
        deltas = try w.conv("bbox_pred", in: channels, out: 4 * anchors, kernel: 1)
    }

    func callAsFunction(_ x: Tensor) throws -> (objectness: Tensor, deltas: Tensor) {
        let t = try conv(x)
        return (try objectness(t), try deltas(t))
    }
}

/// Everything Mask R-CNN computed on a tile, raw and post-processed, for parity checks.
struct MaskRCNNTrace {
    /// Per level P2..P6: planar (A, H, W) logits and (4A, H, W) deltas.
    var rpnObjectness: [[Float]] = []
    var rpnDeltas: [[Float]] = []
    var proposals: [Box] = []
    /// (proposals, classes + 1) and (proposals, 4 (classes + 1)).
    var classLogits: [Float] = []
    var boxRegression: [Float] = []
    /// `label` is the class index (0 = first cell class); `probabilities` the proposal's softmax
    /// over the cell classes, renormalised.
    var detections: [Candidate] = []
    /// Per detection, the M x M logits of its class.
    var maskLogits: [[Float]] = []
}

public final class MaskRCNN: Model, @unchecked Sendable {
    public let kind = ModelKind.maskrcnn
    public var classes: [String] { config.classes }
    public var pixelSize: Double? { config.pixelSize }
    let config: MaskRCNNConfig
    private let scaledInput: ScaledInput
    private let body: ResNetBody
    private let fpn: FPN
    private let rpn: RPNHead
    private let fc6: Linear
    private let fc7: Linear
    private let classScore: Linear
    private let boxPrediction: Linear
    private let maskConvs: [Conv2D]
    private let maskUpsample: Deconv2D
    private let maskLogits: Conv2D
    private let levelStrides = [4, 8, 16, 32, 64]
    /// Detections per mask-head batch.
    static let maskBatch = 64
    private let anchorsPerLevel: [[Box]]

    init(weights: Weights, config c: MaskRCNNConfig) throws {
        let file = weights.file.path
        guard c.anchorSizes.count == 5, !c.aspectRatios.isEmpty else {
            throw ModelError.badMetadata(file: file, reason: "needs 5 anchor sizes (P2..P6) and at least one aspect ratio")
        }
        guard c.mean.count == c.inChannels, c.std.count == c.inChannels else {
            throw ModelError.badMetadata(file: file, reason: "mean/std need one value per input channel (\(c.inChannels))")
        }
        scaledInput = try ScaledInput(mean: c.mean, std: c.std, channels: c.inChannels, scale: c.inputScale, file: file)
        guard c.maskSize == 28 else { throw ModelError.badMetadata(file: file, reason: "mask_size \(c.maskSize) (torchvision's heads give 28)") }
        if let pad = c.padValue, pad != 0 {
            throw ModelError.badMetadata(file: file, reason: "pad_value \(pad) (the normalised tile is padded with zeros, as torchvision does)")
        }
        config = c
        let bb = weights.scoped("backbone")
        body = try ResNetBody(bb.scoped("body"), depth: c.depth, inChannels: c.inChannels, baseWidth: c.baseWidth ?? 64, eps: c.bnEps)
        fpn = try FPN(bb.scoped("fpn"), inChannels: body.outChannels, channels: c.fpnChannels)
        rpn = try RPNHead(weights.scoped("rpn.head"), channels: c.fpnChannels, anchors: c.aspectRatios.count)
        let rh = weights.scoped("roi_heads")
        let n = c.classes.count + 1
        // fc6 reads RoIAlign's channels-last output, so its columns are permuted once from
        // PyTorch's (c, y, x) flattening to (y, x, c).
        let C = c.fpnChannels, R = c.representationSize
        let w6 = try rh.tensor("box_head.fc6.weight", shape: [R, C * 49])
        var p6 = [Float](repeating: 0, count: w6.count)
        for o in 0..<R {
            for ch in 0..<C {
                for s in 0..<49 { p6[o * C * 49 + s * C + ch] = w6[o * C * 49 + ch * 49 + s] }
            }
        }
        fc6 = try Linear(weights: p6, bias: try rh.tensor("box_head.fc6.bias", shape: [R]), inFeatures: C * 49, outFeatures: R, postOps: [.relu],
                         precision: weights.precision, name: rh.path("box_head.fc6"))
        fc7 = try rh.linear("box_head.fc7", in: R, out: R, postOps: [.relu])
        classScore = try rh.linear("box_predictor.cls_score", in: R, out: n)
        boxPrediction = try rh.linear("box_predictor.bbox_pred", in: R, out: 4 * n)
        // older torchvision: roi_heads.mask_head.mask_fcn1..4
        maskConvs = try (0..<4).map {
            try rh.conv(rh.layerName("mask_head.\($0).0", "mask_head.mask_fcn\($0 + 1)"), in: $0 == 0 ? C : c.maskChannels,
                        out: c.maskChannels, kernel: 3, postOps: [.relu], keepsInt8: true)
        }
        let M = c.maskChannels
        maskUpsample = try Deconv2D(weights: try rh.tensor("mask_predictor.conv5_mask.weight", shape: [M, M, 2, 2]),
                                    bias: try rh.tensor("mask_predictor.conv5_mask.bias", shape: [M]),
                                    inChannels: M, outChannels: M, kernel: 2, postOps: [.relu], precision: weights.precision,
                                    name: rh.path("mask_predictor.conv5_mask"), range: rh.range("mask_predictor.conv5_mask"),
                                    outputRange: rh.outputRange("mask_predictor.conv5_mask"))
        maskLogits = try rh.conv("mask_predictor.mask_fcn_logits", in: M, out: c.classAgnosticMasks == true ? 1 : n, kernel: 1)
        anchorsPerLevel = c.anchorSizes.map { size in
            c.aspectRatios.map { r in
                // torchvision: base anchors rounded half-to-even, centred on 0
                let hr = r.squareRoot(), wr = 1 / hr
                let ws = wr * size, hs = hr * size
                return Box(x0: (-ws / 2).rounded(.toNearestOrEven), y0: (-hs / 2).rounded(.toNearestOrEven),
                           x1: (ws / 2).rounded(.toNearestOrEven), y1: (hs / 2).rounded(.toNearestOrEven))
            }
        }
    }

    /// The network's input size for a tile (scaled by `inputScale`).
    func inputSize(_ tile: GrayImage) -> (height: Int, width: Int) { scaledInput.size(tile) }

    /// Normalised, scaled to `inputSize` and padded with zeros to the stride multiple.
    func preprocess(_ tile: GrayImage) throws -> Tensor {
        let m = config.padMultiple, C = config.inChannels
        let scaled = try scaledInput.tensor(tile)
        let (h, w) = (scaled.h, scaled.w)
        let H = (h + m - 1) / m * m, W = (w + m - 1) / m * m
        let t = try Tensor(shape: [1, C, H, W])
        t.data.initialize(repeating: 0, count: t.count)
        withExtendedLifetime(scaled) {
            for y in 0..<h { (t.data + y * W * C).update(from: scaled.data + y * w * C, count: w * C) }
        }
        return t
    }

    /// Everything in the network's input pixels (the tile scaled by `inputScale`).
    func trace(_ tile: GrayImage) throws -> MaskRCNNTrace {
        var out = MaskRCNNTrace()
        let size = inputSize(tile)
        let imageW = Float(size.width), imageH = Float(size.height)
        let input = try preprocess(tile)
        let features = try fpn(body(input))
        out.proposals = try proposals(features, input: input, imageW: imageW, imageH: imageH, trace: &out)
        guard !out.proposals.isEmpty else { return out }

        // Box head on P2..P5, which RoIAlign reads as float32.
        let pyramid = try features[0..<4].map { try $0.floats() }
        let levels = out.proposals.map(roiLevel)
        let pooled = try Tensor(shape: [out.proposals.count, config.fpnChannels * 49])
        RoIAlign(outputSize: 7, samplingRatio: config.roiSamplingRatio, aligned: config.roiAlignAligned)
            .pool(out.proposals, levels: levels, features: pyramid, strides: levelStrides, into: pooled.data)
        let hidden = try fc7(fc6(pooled))
        let logits = try classScore(hidden).floats(), regression = try boxPrediction(hidden).floats()
        withExtendedLifetime((logits, regression)) {
            out.classLogits = Array(UnsafeBufferPointer(start: logits.data, count: logits.count))
            out.boxRegression = Array(UnsafeBufferPointer(start: regression.data, count: regression.count))
        }
        out.detections = detections(out, imageW: imageW, imageH: imageH)
        guard !out.detections.isEmpty else { return out }

        // Mask head on the detections, a fixed-size batch at a time: one set of primitives, and a
        // working set that does not grow with the number of cells (948 detections at once held
        // 1.3 GB). The last batch is padded with zeros and its padding discarded.
        let batch = Self.maskBatch
        let C = config.fpnChannels, S = config.maskSize
        let roiAlign = RoIAlign(outputSize: 14, samplingRatio: config.roiSamplingRatio, aligned: config.roiAlignAligned)
        for start in stride(from: 0, to: out.detections.count, by: batch) {
            let part = out.detections[start..<min(start + batch, out.detections.count)]
            let boxes = part.map(\.box)
            let maskIn = try Tensor(shape: [batch, C, 14, 14])
            let filled = boxes.count * C * 14 * 14
            (maskIn.data + filled).initialize(repeating: 0, count: maskIn.count - filled)
            roiAlign.pool(boxes, levels: boxes.map(roiLevel), features: pyramid, strides: levelStrides, into: maskIn.data)
            var m = maskIn
            for conv in maskConvs { m = try conv(m) }
            let masks = try maskLogits(maskUpsample(m)).floats()
            let n = masks.c
            out.maskLogits += part.enumerated().map { d, det in
                let channel = n == 1 ? 0 : det.label + 1
                return withExtendedLifetime(masks) { (0..<(S * S)).map { masks.data[(d * S * S + $0) * n + channel] } }
            }
        }
        return out
    }

    /// RPN: per level the top `rpnPreNmsTopN` anchors by objectness, decoded, clipped, tiny boxes
    /// dropped, NMS per level at `rpnNmsThreshold`, best `rpnPostNmsTopN` overall.
    private func proposals(_ features: [Tensor], input: Tensor, imageW: Float, imageH: Float, trace: inout MaskRCNNTrace) throws -> [Box] {
        let coder = BoxCoder(weights: (1, 1, 1, 1))
        var candidates: [Candidate] = []
        for (level, f) in features.enumerated() {
            let (rawObj, rawDeltas) = try rpn(f)
            let obj = try rawObj.floats(), deltas = try rawDeltas.floats()
            trace.rpnObjectness.append(try obj.nchw())
            trace.rpnDeltas.append(try deltas.nchw())
            let A = obj.c, H = obj.h, W = obj.w
            let strideY = input.h / H, strideX = input.w / W
            // (y, x, anchor) order, as torchvision flattens
            let count = H * W * A
            let k = min(config.rpnPreNmsTopN, count)
            let o = obj.data
            let top = (0..<count).sorted { o[$0] > o[$1] || (o[$0] == o[$1] && $0 < $1) }.prefix(k)
            for i in top {
                let a = i % A, x = (i / A) % W, y = i / (A * W)
                let base = anchorsPerLevel[level][a]
                let sx = Float(x * strideX), sy = Float(y * strideY)
                let anchor = Box(x0: base.x0 + sx, y0: base.y0 + sy, x1: base.x1 + sx, y1: base.y1 + sy)
                let d = deltas.data + i / A * 4 * A + 4 * a
                let box = coder.decode((d[0], d[1], d[2], d[3]), reference: anchor).clipped(width: imageW, height: imageH)
                guard box.x1 - box.x0 >= 1e-3, box.y1 - box.y0 >= 1e-3 else { continue }
                candidates.append(Candidate(box: box, score: sigmoid(o[i]), label: level))
            }
            withExtendedLifetime((obj, deltas)) {}
        }
        return nonMaximumSuppression(candidates, threshold: config.rpnNmsThreshold, byClass: true, limit: config.rpnPostNmsTopN)
            .map(\.box)
    }

    /// torchvision's LevelMapper: level = floor(4 + log2(sqrt(area) / 224) + 1e-6), clamped to P2..P5.
    private func roiLevel(_ b: Box) -> Int {
        let s = ((b.x1 - b.x0) * (b.y1 - b.y0)).squareRoot()
        let level = floorf(4 + log2f(s / 224) + 1e-6)
        return Int(min(max(level, 2), 5)) - 2
    }

    /// Class-specific boxes (weights 10, 10, 5, 5), softmax scores, clip, score > threshold,
    /// tiny boxes dropped, NMS per class, best `maxDetections`.
    private func detections(_ t: MaskRCNNTrace, imageW: Float, imageH: Float) -> [Candidate] {
        let coder = BoxCoder(weights: (10, 10, 5, 5))
        let n = config.classes.count + 1
        var candidates: [Candidate] = []
        for (p, proposal) in t.proposals.enumerated() {
            let logits = t.classLogits[(p * n)..<((p + 1) * n)]
            let m = logits.max()!
            let e = logits.map { expf($0 - m) }
            let sum = e.reduce(0, +)
            let scores = e.map { $0 / sum }
            let fg = Array(scores[1...])
            let fgSum = fg.reduce(0, +)
            for c in 1..<n where scores[c] > config.scoreThreshold {
                let r = t.boxRegression[(p * n + c) * 4..<((p * n + c) * 4 + 4)].map { $0 }
                let box = coder.decode((r[0], r[1], r[2], r[3]), reference: proposal).clipped(width: imageW, height: imageH)
                guard box.x1 - box.x0 >= 1e-2, box.y1 - box.y0 >= 1e-2 else { continue }
                candidates.append(Candidate(box: box, score: scores[c], label: c - 1, probabilities: fg.map { $0 / fgSum }, source: p))
            }
        }
        return nonMaximumSuppression(candidates, threshold: config.nmsThreshold, byClass: true, limit: config.maxDetections)
    }

    /// The detections and their masks (probabilities over each box), with the mirror image's look
    /// fused in when the file asks for it.
    func detect(_ tile: GrayImage) throws -> BoxMaskedDetections {
        let direct = try look(tile)
        guard config.testTimeFlip == true else { return direct }
        let mirror = try look(tile.mirroredLeftRight).mirrored(width: Float(tile.width))
        return FlipFusion(limit: config.maxDetections).fuse(direct, mirror)
    }

    private func look(_ tile: GrayImage) throws -> BoxMaskedDetections {
        let t = try trace(tile)
        var detections = t.detections
        let size = inputSize(tile)
        if size != (tile.height, tile.width) {
            // back to tile pixels as torchvision's postprocess (resize_boxes) does
            let rx = Float(tile.width) / Float(size.width), ry = Float(tile.height) / Float(size.height)
            for i in detections.indices {
                let b = detections[i].box
                detections[i].box = Box(x0: b.x0 * rx, y0: b.y0 * ry, x1: b.x1 * rx, y1: b.y1 * ry)
            }
        }
        return BoxMaskedDetections(detections: detections, masks: t.maskLogits.map { $0.map(sigmoid) })
    }

    /// Boxes, scores and class probabilities per detection, plus its soft M x M mask over its box.
    /// `Detection` has no label of its own: its class probabilities are those of the proposal it
    /// came from, so a class-specific box whose class is not that proposal's best reports the best.
    public func run(_ tile: GrayImage) throws -> TileArtifact {
        let found = try detect(tile)
        let S = config.maskSize
        return TileArtifact(
            model: kind.rawValue, tile: PixelRect(x: 0, y: 0, width: tile.width, height: tile.height), classes: classes,
            detections: found.detections.map { Detection(box: $0.box, score: $0.score, classProbabilities: $0.probabilities) },
            masks: found.masks.map { ProbabilityMap(channels: 1, width: S, height: S, probabilities: $0) })
    }
}
