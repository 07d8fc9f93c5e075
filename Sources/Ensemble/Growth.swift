import Imaging

/// Cells of some types grow into the UPerNet foreground next to them that no other cell holds.
///
/// Astrocytes reach out long, faint processes: the detectors outline the cell body (on the
/// validation split their masks hold a median 44 % of the true cell) while UPerNet marks the
/// processes as foreground. Growing a body through that foreground, a step at a time and only
/// into free pixels, gives it back its processes without letting it cross onto a neighbour.
/// Small, compact types gain nothing and lose precision, so each type has its own reach.
public struct ForegroundGrowth: Sendable, Equatable, Codable {
    /// How many 4-connected steps through foreground a cell of this type may grow; types not
    /// listed (or 0) keep the mask the vote gave them.
    public var radiusByType: [String: Int] = [:]
    /// The UPerNet foreground probability a pixel needs for a cell to grow into it.
    public var foregroundThreshold: Double = 0.5

    public init(radiusByType: [String: Int] = [:], foregroundThreshold: Double = 0.5) {
        self.radiusByType = radiusByType
        self.foregroundThreshold = foregroundThreshold
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ForegroundGrowth()
        radiusByType = try c.decodeIfPresent([String: Int].self, forKey: .radiusByType) ?? d.radiusByType
        foregroundThreshold = try c.decodeIfPresent(Double.self, forKey: .foregroundThreshold) ?? d.foregroundThreshold
    }

    func radius(_ type: String) -> Int { max(0, radiusByType[type] ?? 0) }

    /// Grows `instances` in place. All growing cells advance together, one step per round, so
    /// free foreground between two cells is split by distance; within a round the earlier
    /// (more confident) instance wins a contested pixel. The cell type stays the one that
    /// decided the reach.
    func grow(_ instances: inout [CellInstance], foreground: [Float], width: Int, height: Int) {
        let reach = instances.map { radius($0.cellType) }
        guard let steps = reach.max(), steps > 0 else { return }
        var owner = [Int32](repeating: -1, count: width * height)
        var frontier: [Int] = []
        for (i, cell) in instances.enumerated() {
            let b = cell.box
            for y in 0..<b.height {
                for x in 0..<b.width where cell.mask.bits[y * b.width + x] != 0 {
                    let p = (b.y + y) * width + b.x + x
                    owner[p] = Int32(i)
                    if reach[i] > 0 { frontier.append(p) }
                }
            }
        }
        let t = Float(foregroundThreshold)
        var added = [[Int]](repeating: [], count: instances.count)
        for step in 1...steps {
            var next: [Int] = []
            for p in frontier {
                let o = Int(owner[p])
                guard reach[o] >= step else { continue }
                func take(_ q: Int) {
                    guard owner[q] < 0, foreground[q] > t else { return }
                    owner[q] = Int32(o)
                    added[o].append(q)
                    next.append(q)
                }
                let x = p % width, y = p / width
                if x > 0 { take(p - 1) }
                if x < width - 1 { take(p + 1) }
                if y > 0 { take(p - width) }
                if y < height - 1 { take(p + width) }
            }
            if next.isEmpty { break }
            frontier = next
        }
        for i in instances.indices where !added[i].isEmpty {
            instances[i].mask = instances[i].mask.adding(pixels: added[i])
            instances[i].rle = COCORLE(mask: instances[i].mask).compressedString
        }
    }

    var problem: String? {
        guard foregroundThreshold.isFinite, (0...1).contains(foregroundThreshold) else {
            return "growth.foregroundThreshold \(foregroundThreshold) is not between 0 and 1"
        }
        if let type = radiusByType.keys.sorted().first(where: { radiusByType[$0]! < 0 }) {
            return "growth.radiusByType gives \(type) a negative radius"
        }
        return nil
    }
}

extension Mask {
    /// This mask with more pixels (image indices) set; its window grows to hold them.
    func adding(pixels: [Int]) -> Mask {
        let b = box
        var x0 = b.x, y0 = b.y, x1 = b.x + b.width, y1 = b.y + b.height
        for p in pixels {
            let x = p % imageWidth, y = p / imageWidth
            x0 = min(x0, x); y0 = min(y0, y); x1 = max(x1, x + 1); y1 = max(y1, y + 1)
        }
        let window = PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        var out = [UInt8](repeating: 0, count: window.area)
        for y in 0..<b.height {
            for x in 0..<b.width where bits[y * b.width + x] != 0 {
                out[(b.y + y - y0) * window.width + b.x + x - x0] = 1
            }
        }
        for p in pixels { out[(p / imageWidth - y0) * window.width + p % imageWidth - x0] = 1 }
        return Mask(imageWidth: imageWidth, imageHeight: imageHeight, window: window, bits: out)
    }
}
