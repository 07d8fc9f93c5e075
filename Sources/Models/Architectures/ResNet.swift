/// ResNet body (He et al. 2016) with torchvision's tensor names (conv1, bn1, layer1..4, each block
/// conv1/bn1..., downsample.0/1) and torchvision's v1.5 layout (stride on the 3x3 conv). Shared by
/// UPerNet and Mask R-CNN. Optional dilation replaces the stride of layer2..4 as torchvision's
/// `replace_stride_with_dilation`. Every reader of its convolutions' outputs is a convolution, the
/// max pool, or (C2..C5) a network's neck, which takes int8 where it can: in int8 they pass int8.
struct ResNetBody {
    private enum Block {
        case basic(conv1: Conv2D, conv2: Conv2D, downsample: Conv2D?)
        case bottleneck(conv1: Conv2D, conv2: Conv2D, conv3: Conv2D, downsample: Conv2D?)

        func callAsFunction(_ x: Tensor) throws -> Tensor {
            switch self {
            case let .basic(conv1, conv2, downsample):
                let identity = try downsample.map { try $0(x) } ?? x
                return try conv2(conv1(x), residual: identity)
            case let .bottleneck(conv1, conv2, conv3, downsample):
                let identity = try downsample.map { try $0(x) } ?? x
                return try conv3(conv2(conv1(x)), residual: identity)
            }
        }
    }

    private let stem: Conv2D
    private let layers: [[Block]]
    /// Channels of C2..C5.
    let outChannels: [Int]

    static func blockCounts(_ depth: Int) -> (bottleneck: Bool, counts: [Int])? {
        switch depth {
        case 18: (false, [2, 2, 2, 2])
        case 34: (false, [3, 4, 6, 3])
        case 50: (true, [3, 4, 6, 3])
        case 101: (true, [3, 4, 23, 3])
        default: nil
        }
    }

    init(_ w: Weights, depth: Int, inChannels: Int, dilation: [Bool] = [false, false, false], baseWidth: Int = 64, eps: Float) throws {
        guard let (bottleneck, counts) = Self.blockCounts(depth) else {
            throw ModelError.badMetadata(file: w.file.path, reason: "ResNet depth \(depth) (supported: 18, 34, 50, 101)")
        }
        guard dilation.count == 3 else { throw ModelError.badMetadata(file: w.file.path, reason: "dilation needs 3 flags (layer2..4)") }
        stem = try w.convBN(conv: "conv1", bn: "bn1", in: inChannels, out: baseWidth, kernel: 7, stride: 2, padding: 3, eps: eps, postOps: [.relu], keepsInt8: true)
        let expansion = bottleneck ? 4 : 1
        var inplanes = baseWidth
        var currentDilation = 1
        var layers: [[Block]] = []
        for stage in 0..<4 {
            let planes = baseWidth << stage
            var stride = stage == 0 ? 1 : 2
            let previousDilation = currentDilation
            if stage > 0 && dilation[stage - 1] {
                currentDilation *= stride
                stride = 1
            }
            var blocks: [Block] = []
            for b in 0..<counts[stage] {
                let bw = w.scoped("layer\(stage + 1)").scoped(b)
                let s = b == 0 ? stride : 1
                let d = b == 0 ? previousDilation : currentDilation
                let cin = b == 0 ? inplanes : planes * expansion
                var downsample: Conv2D?
                if b == 0 && (stride != 1 || inplanes != planes * expansion) {
                    downsample = try bw.convBN(conv: "downsample.0", bn: "downsample.1", in: cin, out: planes * expansion, kernel: 1, stride: stride, padding: 0, eps: eps, keepsInt8: true)
                }
                if bottleneck {
                    blocks.append(.bottleneck(
                        conv1: try bw.convBN(conv: "conv1", bn: "bn1", in: cin, out: planes, kernel: 1, eps: eps, postOps: [.relu], keepsInt8: true),
                        conv2: try bw.convBN(conv: "conv2", bn: "bn2", in: planes, out: planes, kernel: 3, stride: s, dilation: d, eps: eps, postOps: [.relu], keepsInt8: true),
                        conv3: try bw.convBN(conv: "conv3", bn: "bn3", in: planes, out: planes * 4, kernel: 1, eps: eps, postOps: [.add, .relu], keepsInt8: true),
                        downsample: downsample))
                } else {
                    blocks.append(.basic(
                        conv1: try bw.convBN(conv: "conv1", bn: "bn1", in: cin, out: planes, kernel: 3, stride: s, dilation: d, eps: eps, postOps: [.relu], keepsInt8: true),
                        conv2: try bw.convBN(conv: "conv2", bn: "bn2", in: planes, out: planes, kernel: 3, dilation: d, eps: eps, postOps: [.add, .relu], keepsInt8: true),
                        downsample: downsample))
                }
            }
            inplanes = planes * expansion
            layers.append(blocks)
        }
        self.layers = layers
        outChannels = (0..<4).map { (baseWidth << $0) * expansion }
    }

    /// C2..C5.
    func callAsFunction(_ x: Tensor) throws -> [Tensor] {
        var y = try Ops.maxPool(stem(x), kernel: 3, stride: 2, padding: 1)
        var outs: [Tensor] = []
        for layer in layers {
            for block in layer { y = try block(y) }
            outs.append(y)
        }
        return outs
    }
}
