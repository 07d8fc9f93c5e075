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

/// Greedy NMS in decreasing score order: a box is dropped when it overlaps a kept box (of the same
/// label when `byClass`) with IoU above `threshold`. Returns the kept candidates, best first,
/// which is what torchvision's `nms` / `batched_nms` return (equal scores: earlier index first).
/// With `limit`, stops once `limit` kept candidates satisfy `counts` — the same result as
/// suppressing everything and keeping the first `limit` of those, without the rest of the work.
func nonMaximumSuppression(_ candidates: [Candidate], threshold: Float, byClass: Bool, limit: Int = .max,
                           counts: (Candidate) -> Bool = { _ in true }) -> [Candidate] {
    let order = candidates.indices.sorted {
        candidates[$0].score > candidates[$1].score || (candidates[$0].score == candidates[$1].score && $0 < $1)
    }
    var kept: [Candidate] = []
    var keptByLabel: [Int: KeptBoxes] = [:]
    var counted = 0
    for i in order {
        let c = candidates[i]
        let label = byClass ? c.label : 0
        let group = keptByLabel[label] ?? KeptBoxes()
        guard !group.overlaps(c.box, above: threshold) else { continue }
        group.append(c.box)
        keptByLabel[label] = group
        kept.append(c)
        if counts(c) {
            counted += 1
            if counted == limit { break }
        }
    }
    return kept
}

/// The boxes kept so far for one label, as flat arrays for a tight overlap loop.
private final class KeptBoxes {
    private var x0: [Float] = [], y0: [Float] = [], x1: [Float] = [], y1: [Float] = [], area: [Float] = []

    func append(_ b: Box) {
        x0.append(b.x0)
        y0.append(b.y0)
        x1.append(b.x1)
        y1.append(b.y1)
        area.append((b.x1 - b.x0) * (b.y1 - b.y0))
    }

    /// IoU as torchvision's NMS kernel computes it (no +1 on widths).
    func overlaps(_ b: Box, above threshold: Float) -> Bool {
        let a = (b.x1 - b.x0) * (b.y1 - b.y0)
        for j in 0..<area.count {
            let w = max(0, min(b.x1, x1[j]) - max(b.x0, x0[j]))
            let h = max(0, min(b.y1, y1[j]) - max(b.y0, y0[j]))
            let inter = w * h
            let union = a + area[j] - inter
            if union > 0 && inter / union > threshold { return true }
        }
        return false
    }
}
