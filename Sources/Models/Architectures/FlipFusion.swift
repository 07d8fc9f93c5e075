import Imaging

/// A detector's detections on one tile, each with its M x M mask as probabilities over its box.
struct BoxMaskedDetections: Sendable {
    var detections: [Candidate]
    var masks: [[Float]]

    /// The same detections seen in the tile mirrored left-right (x -> width - x).
    func mirrored(width: Float) -> BoxMaskedDetections {
        BoxMaskedDetections(
            detections: detections.map {
                var c = $0
                c.box = Box(x0: width - $0.box.x1, y0: $0.box.y0, x1: width - $0.box.x0, y1: $0.box.y1)
                return c
            },
            masks: masks.map { mask in
                let m = Int(Double(mask.count).squareRoot())
                return (0..<mask.count).map { mask[$0 / m * m + (m - 1 - $0 % m)] }
            })
    }
}

/// Horizontal-flip test-time augmentation. The tile and its mirror image are two looks at the
/// same cells; a cell both looks find is more certain and its outline is the mean of two
/// estimates, a detection only one look makes is more likely noise. Measured on the 60 val images
/// with the shipped Mask R-CNN: see MODEL_CARD.md. The Python reference is
/// `training/archs/maskrcnn.py` (`fuse_flip`), which `make parity-shipped` compares against.
struct FlipFusion: Sendable {
    /// Box IoU above which two same-class detections are one cell.
    var matchIoU: Float = 0.5
    var limit: Int

    /// `direct` from the tile, `mirror` from its mirror image already mirrored back. In `direct`'s
    /// score order each detection pairs with the unpaired `mirror` detection of the same class
    /// whose box overlaps it most; a pair becomes one detection with the mean box, score and
    /// class probabilities and the mean of both masks resampled onto that box. A detection only
    /// one look made keeps half its score. Best first, at most `limit`.
    func fuse(_ direct: BoxMaskedDetections, _ mirror: BoxMaskedDetections) -> BoxMaskedDetections {
        let a = direct.detections, b = mirror.detections
        var taken = [Bool](repeating: false, count: b.count)
        var pairedA = [Bool](repeating: false, count: a.count)
        var fused: [(Candidate, [Float])] = []
        let order = a.indices.sorted { a[$0].score > a[$1].score || (a[$0].score == a[$1].score && $0 < $1) }
        for i in order {
            var best = -1
            var bestIoU: Float = 0
            for j in b.indices where !taken[j] && b[j].label == a[i].label {
                let iou = a[i].box.iou(b[j].box)
                if iou > bestIoU { best = j; bestIoU = iou }
            }
            guard best >= 0, bestIoU > matchIoU else { continue }
            taken[best] = true
            pairedA[i] = true
            let p = a[i], q = b[best]
            let box = Box(x0: (p.box.x0 + q.box.x0) / 2, y0: (p.box.y0 + q.box.y0) / 2,
                          x1: (p.box.x1 + q.box.x1) / 2, y1: (p.box.y1 + q.box.y1) / 2)
            let mp = Self.resample(direct.masks[i], from: p.box, onto: box)
            let mq = Self.resample(mirror.masks[best], from: q.box, onto: box)
            var c = p
            c.box = box
            c.score = (p.score + q.score) / 2
            c.probabilities = zip(p.probabilities, q.probabilities).map { ($0 + $1) / 2 }
            fused.append((c, zip(mp, mq).map { ($0 + $1) / 2 }))
        }
        for (pass, alone) in [(direct, a.indices.filter { !pairedA[$0] }), (mirror, b.indices.filter { !taken[$0] })] {
            for k in alone {
                var c = pass.detections[k]
                c.score /= 2
                fused.append((c, pass.masks[k]))
            }
        }
        let kept = fused.indices.sorted {
            fused[$0].0.score > fused[$1].0.score || (fused[$0].0.score == fused[$1].0.score && $0 < $1)
        }.prefix(limit)
        return BoxMaskedDetections(detections: kept.map { fused[$0].0 }, masks: kept.map { fused[$0].1 })
    }

    /// An M x M mask over box `source` read (edges held) at the cell centres of an M x M grid
    /// over box `target`.
    static func resample(_ mask: [Float], from source: Box, onto target: Box) -> [Float] {
        let m = Int(Double(mask.count).squareRoot())
        guard m > 1 else { return mask }
        let grid = BoxGrid(cells: m, over: source)
        let centres = (0..<m).map { (Float($0) + 0.5) / Float(m) }
        let columns = centres.map { grid.column(atX: target.x0 + $0 * (target.x1 - target.x0)) }
        let rows = centres.map { grid.row(atY: target.y0 + $0 * (target.y1 - target.y0)) }
        return mask.withUnsafeBufferPointer { v in
            rows.flatMap { row in columns.map { column in grid.interpolate(row, column) { v[$0] } } }
        }
    }
}

extension GrayImage {
    /// The tile seen in a mirror (x -> width - 1 - x): the second look of test-time flip.
    var mirroredLeftRight: GrayImage {
        var out = self
        for y in 0..<height {
            for x in 0..<width { out.pixels[y * width + x] = pixels[y * width + width - 1 - x] }
        }
        return out
    }
}
