import Foundation

/// Loaders for the layers every architecture shares. Batch norm (frozen or not: both keep
/// weight, bias, running_mean, running_var) is folded into the preceding convolution here, once.
extension Weights {
    /// A convolution without bias followed by a batch norm, e.g. `conv` + `bn` or `conv1` + `bn1`.
    /// `keepsInt8`: every reader of its output takes int8 (`Conv2D`'s `outputRange`).
    func convBN(conv: String = "conv", bn: String = "bn", in cin: Int, out cout: Int, kernel: Int,
                stride: Int = 1, padding: Int? = nil, dilation: Int = 1, groups: Int = 1, eps: Float,
                postOps: [PostOp] = [], keepsInt8: Bool = false) throws -> Conv2D {
        let w = try tensor("\(conv).weight", shape: [cout, cin / groups, kernel, kernel])
        let (fw, fb) = try foldBatchNorm(w, bias: nil, bn: scoped(bn), channels: cout, eps: eps)
        return try Conv2D(weights: fw, bias: fb, inChannels: cin, outChannels: cout, kernel: kernel, stride: stride,
                          padding: padding ?? dilation * (kernel - 1) / 2, dilation: dilation, groups: groups, postOps: postOps,
                          precision: precision, name: path(conv), range: range(conv),
                          outputRange: keepsInt8 ? outputRange(conv) : nil)
    }

    /// A plain convolution with bias (`name.weight`, `name.bias`); `keepsInt8` as `convBN`'s.
    func conv(_ name: String, in cin: Int, out cout: Int, kernel: Int, stride: Int = 1, padding: Int? = nil,
              postOps: [PostOp] = [], keepsInt8: Bool = false) throws -> Conv2D {
        let w = try tensor("\(name).weight", shape: [cout, cin, kernel, kernel])
        let b = try tensor("\(name).bias", shape: [cout])
        return try Conv2D(weights: w, bias: b, inChannels: cin, outChannels: cout, kernel: kernel, stride: stride,
                          padding: padding ?? (kernel - 1) / 2, postOps: postOps, precision: precision, name: path(name), range: range(name),
                          outputRange: keepsInt8 ? outputRange(name) : nil)
    }

    func linear(_ name: String, in cin: Int, out cout: Int, postOps: [PostOp] = []) throws -> Linear {
        try Linear(weights: try tensor("\(name).weight", shape: [cout, cin]), bias: try tensor("\(name).bias", shape: [cout]),
                   inFeatures: cin, outFeatures: cout, postOps: postOps, precision: precision, name: path(name))
    }

    func foldBatchNorm(_ w: [Float], bias: [Float]?, bn: Weights, channels: Int, eps: Float) throws -> ([Float], [Float]) {
        let gamma = try bn.tensor("weight", shape: [channels])
        let beta = try bn.tensor("bias", shape: [channels])
        let mean = try bn.tensor("running_mean", shape: [channels])
        let variance = try bn.tensor("running_var", shape: [channels])
        guard variance.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
            throw ModelError.badTensor(file: file.path, tensor: bn.path("running_var"), reason: "has negative or non-finite variances")
        }
        let per = w.count / channels
        var fw = w
        var fb = [Float](repeating: 0, count: channels)
        for o in 0..<channels {
            let scale = gamma[o] / (variance[o] + eps).squareRoot()
            for i in 0..<per { fw[o * per + i] *= scale }
            fb[o] = beta[o] + ((bias?[o] ?? 0) - mean[o]) * scale
        }
        return (fw, fb)
    }
}
