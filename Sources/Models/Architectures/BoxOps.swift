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
/// which is what torchvision's `nms` / `batched_nms` return (equal scores: earlier index first).
func nonMaximumSuppression(_ candidates: [Candidate], threshold: Float, byClass: Bool) -> [Candidate] {
    let order = candidates.indices.sorted {
        candidates[$0].score > candidates[$1].score || (candidates[$0].score == candidates[$1].score && $0 < $1)
    }
    var groups: [Int: [Int]] = [:]
    for i in order { groups[byClass ? candidates[i].label : 0, default: []].append(i) }
    var kept = [Bool](repeating: false, count: candidates.count)
    for group in groups.values {
        for i in greedySuppression(group.map { candidates[$0].box }, threshold: threshold) { kept[group[i]] = true }
    }
    return order.filter { kept[$0] }.map { candidates[$0] }
}

/// Indices (into `boxes`, which are sorted best first) that survive greedy suppression.
private func greedySuppression(_ boxes: [Box], threshold: Float) -> [Int] {
    let n = boxes.count
    let x0 = boxes.map(\.x0), y0 = boxes.map(\.y0), x1 = boxes.map(\.x1), y1 = boxes.map(\.y1)
    let area = boxes.map { ($0.x1 - $0.x0) * ($0.y1 - $0.y0) }
    var suppressed = [Bool](repeating: false, count: n)
    var kept: [Int] = []
    x0.withUnsafeBufferPointer { x0 in y0.withUnsafeBufferPointer { y0 in x1.withUnsafeBufferPointer { x1 in
        y1.withUnsafeBufferPointer { y1 in area.withUnsafeBufferPointer { area in suppressed.withUnsafeMutableBufferPointer { sup in
            for i in 0..<n where !sup[i] {
                kept.append(i)
                let (ax0, ay0, ax1, ay1, aa) = (x0[i], y0[i], x1[i], y1[i], area[i])
                var j = i + 1
                while j < n {
                    if !sup[j] {
                        let w = max(0, min(ax1, x1[j]) - max(ax0, x0[j]))
                        let h = max(0, min(ay1, y1[j]) - max(ay0, y0[j]))
                        let inter = w * h
                        let union = aa + area[j] - inter
                        if union > 0 && inter / union > threshold { sup[j] = true }
                    }
                    j += 1
                }
            }
        } } }
    } } }
    return kept
}
