import Foundation
import Imaging

/// A scored box before suppression.
struct Candidate: Sendable {
    var box: Box
    var score: Float
    var label: Int
    var probabilities: [Float] = []
    /// Where the candidate came from (proposal index, anchor index), for callers that need it.
    var source: Int = 0
}

/// IoU as torchvision's NMS kernel computes it (no +1 on widths).
@inline(__always)
func iou(_ a: Box, _ b: Box) -> Float {
    let w = max(0, min(a.x1, b.x1) - max(a.x0, b.x0))
    let h = max(0, min(a.y1, b.y1) - max(a.y0, b.y0))
    let inter = w * h
    let union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return union > 0 ? inter / union : 0
}

/// Greedy NMS in decreasing score order: a box is dropped when it overlaps a kept box (of the same
/// label when `byClass`) with IoU above `threshold`. Returns the kept candidates, best first,
/// which is what torchvision's `nms` / `batched_nms` return.
func nonMaximumSuppression(_ candidates: [Candidate], threshold: Float, byClass: Bool) -> [Candidate] {
    let order = candidates.indices.sorted { candidates[$0].score > candidates[$1].score || (candidates[$0].score == candidates[$1].score && $0 < $1) }
    var suppressed = [Bool](repeating: false, count: candidates.count)
    var kept: [Candidate] = []
    for (rank, i) in order.enumerated() where !suppressed[i] {
        let a = candidates[i]
        kept.append(a)
        for j in order[(rank + 1)...] where !suppressed[j] {
            let b = candidates[j]
            if (!byClass || a.label == b.label) && iou(a.box, b.box) > threshold { suppressed[j] = true }
        }
    }
    return kept
}
