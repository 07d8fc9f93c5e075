import Imaging

/// One detection moved from its tile into image coordinates.
struct PlacedDetection: Sendable {
    var box: Box
    var score: Double
    /// Over `EnsembleConfig.classes`.
    var classProbabilities: [Double]
    /// Mask R-CNN's soft mask over `box`, square.
    var softMask: ProbabilityMap?
    /// Index of the tile it came from, so that duplicates are only sought across tiles.
    var tile: Int
}

/// UPerNet's maps blended over the whole image.
struct SemanticPlanes: Sendable {
    /// The cell classes' probabilities summed (1 - background - separators), per image pixel, row-major.
    var foreground: [Float]
    /// Per class of `EnsembleConfig.classes`, class-major.
    var classes: [Float]
}

/// Every model's output for one image, in image coordinates: what the vote starts from.
struct StitchedImage: Sendable {
    var image: String
    var width: Int
    var height: Int
    var detections: [EnsembleModel: [PlacedDetection]]
    var semantic: SemanticPlanes?
}

enum Stitcher {
    static func stitch(image: String, width: Int, height: Int, artifacts: [TileArtifact],
                       models: Set<EnsembleModel>, config: EnsembleConfig) throws -> StitchedImage {
        guard width > 0, height > 0, width <= 1 << 16, height <= 1 << 16 else {
            throw EnsembleError.badImage(image: image, reason: "size \(width)x\(height) is not between 1 and 65536 pixels a side")
        }
        if let problem = config.problem { throw EnsembleError.badConfig(path: "the ensemble config", reason: problem) }
        var byModel: [EnsembleModel: [TileArtifact]] = [:]
        for a in artifacts {
            guard let kind = EnsembleModel(artifactModel: a.model) else {
                throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                                reason: "model '\(a.model)' is none of yolox, maskrcnn, upernet")
            }
            guard a.tile.x >= 0, a.tile.y >= 0, a.tile.width > 0, a.tile.height > 0, a.tile.x <= width, a.tile.y <= height,
                  a.tile.width <= width, a.tile.height <= height, a.tile.maxX <= width, a.tile.maxY <= height else {
                throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                                reason: "\(a.model) tile lies outside the \(width)x\(height) image")
            }
            if models.contains(kind) { byModel[kind, default: []].append(a) }
        }
        var out = StitchedImage(image: image, width: width, height: height, detections: [:], semantic: nil)
        for kind in EnsembleModel.allCases where models.contains(kind) {
            guard let arts = byModel[kind], !arts.isEmpty else { throw EnsembleError.missingArtifacts(image: image, model: kind) }
            try checkTiles(arts, kind: kind, image: image, width: width, height: height)
            switch kind {
            case .yolox, .maskrcnn:
                out.detections[kind] = try placeDetections(arts, kind: kind, image: image, width: width, height: height, config: config)
            case .upernet:
                out.semantic = try blendSemantic(arts, image: image, width: width, height: height, config: config)
            }
        }
        return out
    }

    /// One artifact per tile, and tiles that cover the image: a missing tile would leave its
    /// cells out silently, and two artifacts at one place are usually tiles whose `tile` was
    /// left at the networks' (0, 0) instead of being set to where the tile lies in the image.
    private static func checkTiles(_ arts: [TileArtifact], kind: EnsembleModel, image: String, width: Int, height: Int) throws {
        var seen = Set<PixelRect>()
        for a in arts where !seen.insert(a.tile).inserted {
            throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                            reason: "two \(kind.rawValue) artifacts for this tile; each artifact's `tile` must be where its tile lies in the image")
        }
        var covered = [Bool](repeating: false, count: width * height)
        for a in arts {
            for y in a.tile.y..<a.tile.maxY {
                for x in a.tile.x..<a.tile.maxX { covered[y * width + x] = true }
            }
        }
        guard covered.contains(false) else { return }
        var x0 = width, y0 = height, x1 = 0, y1 = 0
        for (p, c) in covered.enumerated() where !c {
            x0 = min(x0, p % width); x1 = max(x1, p % width + 1); y0 = min(y0, p / width); y1 = max(y1, p / width + 1)
        }
        throw EnsembleError.missingTiles(image: image, model: kind, uncovered: PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0))
    }

    /// Index in `config.classes` of each artifact class; -1 for a separator class of a semantic
    /// map (`config.separatorClasses`), which is neither a cell type nor background.
    private static func classMap(_ a: TileArtifact, image: String, config: EnsembleConfig, semantic: Bool = false) throws -> [Int] {
        try a.classes.map { name in
            if let i = config.classes.firstIndex(of: name) { return i }
            if semantic && config.separatorClasses.contains(name) { return -1 }
            throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                            reason: "\(a.model) class '\(name)' is not one of the ensemble's classes \(config.classes)"
                                                + (semantic ? " or separator classes \(config.separatorClasses)" : ""))
        }
    }

    /// Tiles overlap, so a cell near a seam is seen by several tiles: whole where it lies inside
    /// a tile, cut where its box runs into a tile's inner edge. Whole sightings win; a cut one is
    /// kept only when no tile shows that cell whole (a cell larger than the overlap).
    private static func placeDetections(_ arts: [TileArtifact], kind: EnsembleModel, image: String,
                                        width: Int, height: Int, config: EnsembleConfig) throws -> [PlacedDetection] {
        var whole: [PlacedDetection] = [], cut: [PlacedDetection] = []
        let margin = Float(config.seamMargin)
        for (t, a) in arts.enumerated() {
            let map = try classMap(a, image: image, config: config)
            if kind == .maskrcnn {
                guard a.masks.count == a.detections.count else {
                    throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                                    reason: "maskrcnn artifact has \(a.masks.count) masks for \(a.detections.count) detections")
                }
            }
            for (k, d) in a.detections.enumerated() {
                guard ([d.box.x0, d.box.y0, d.box.x1, d.box.y1, d.score] + d.classProbabilities).allSatisfy(\.isFinite),
                      d.classProbabilities.count == a.classes.count else {
                    throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                                    reason: "\(a.model) detection \(k) has a non-finite box or score, or the wrong number of class probabilities")
                }
                // The networks clip boxes to the tile already; clipping again keeps a stray
                // coordinate from reaching the pixel arithmetic.
                let b = Box(x0: min(max(d.box.x0, 0), Float(a.tile.width)), y0: min(max(d.box.y0, 0), Float(a.tile.height)),
                            x1: min(max(d.box.x1, 0), Float(a.tile.width)), y1: min(max(d.box.y1, 0), Float(a.tile.height)))
                guard Double(d.score) >= config.minDetectionScore, b.width >= 1, b.height >= 1 else { continue }
                var probs = [Double](repeating: 0, count: config.classes.count)
                for (i, p) in d.classProbabilities.enumerated() { probs[map[i]] += Double(p) }
                var soft: ProbabilityMap?
                if kind == .maskrcnn {
                    let m = a.masks[k]
                    guard m.channels == 1, m.width == m.height, m.width > 1 else {
                        throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                                        reason: "maskrcnn mask \(k) is \(m.channels)x\(m.width)x\(m.height), expected one square channel")
                    }
                    soft = m
                }
                let tw = Float(a.tile.width), th = Float(a.tile.height)
                let seam = (b.x0 <= margin && a.tile.x > 0) || (b.y0 <= margin && a.tile.y > 0)
                    || (b.x1 >= tw - margin && a.tile.maxX < width) || (b.y1 >= th - margin && a.tile.maxY < height)
                let placed = PlacedDetection(box: b.offsetBy(dx: Float(a.tile.x), dy: Float(a.tile.y)), score: Double(d.score),
                                             classProbabilities: probs, softMask: soft, tile: t)
                if seam { cut.append(placed) } else { whole.append(placed) }
            }
        }
        let byScore: (PlacedDetection, PlacedDetection) -> Bool = { $0.score > $1.score }
        var kept: [PlacedDetection] = []
        for d in whole.sorted(by: byScore) {
            let duplicate = kept.contains { $0.tile != d.tile && Double($0.box.iou(d.box)) > config.stitchIoU }
            if !duplicate { kept.append(d) }
        }
        let pieces = cut.sorted(by: byScore).filter { d in
            !kept.contains { $0.tile != d.tile && coverage(of: d.box, by: $0.box) > 0.6 }
        }
        return kept + joinPieces(pieces, tiles: arts.map(\.tile), config: config)
    }

    /// A cell larger than the overlap is cut in every tile. Two pieces from different tiles are
    /// one cell when they agree where their tiles overlap (box IoU inside that shared region above
    /// `stitchIoU`); the pieces of one cell become one detection over the union of their boxes.
    private static func joinPieces(_ pieces: [PlacedDetection], tiles: [PixelRect], config: EnsembleConfig) -> [PlacedDetection] {
        var parent = Array(pieces.indices)
        func root(_ i: Int) -> Int {
            var i = i
            while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }
            return i
        }
        for i in pieces.indices {
            for j in pieces.indices where j > i && pieces[i].tile != pieces[j].tile {
                let a = tiles[pieces[i].tile], b = tiles[pieces[j].tile]
                let shared = Box(x0: Float(max(a.x, b.x)), y0: Float(max(a.y, b.y)),
                                 x1: Float(min(a.maxX, b.maxX)), y1: Float(min(a.maxY, b.maxY)))
                guard shared.width > 0, shared.height > 0 else { continue }
                if Double(clip(pieces[i].box, to: shared).iou(clip(pieces[j].box, to: shared))) > config.stitchIoU {
                    parent[root(j)] = root(i)
                }
            }
        }
        var groups: [Int: [PlacedDetection]] = [:]
        var order: [Int] = []
        for i in pieces.indices {
            let r = root(i)
            if groups[r] == nil { order.append(r) }
            groups[r, default: []].append(pieces[i])
        }
        return order.map { joined(groups[$0]!) }
    }

    private static func clip(_ b: Box, to r: Box) -> Box {
        Box(x0: max(b.x0, r.x0), y0: max(b.y0, r.y0), x1: max(min(b.x1, r.x1), max(b.x0, r.x0)), y1: max(min(b.y1, r.y1), max(b.y0, r.y0)))
    }

    /// One detection from the pieces of a cell: union box, best score, score-weighted classes,
    /// and a soft mask (twice the pieces' resolution) that is the most of the pieces at each point.
    private static func joined(_ pieces: [PlacedDetection]) -> PlacedDetection {
        guard pieces.count > 1 else { return pieces[0] }
        let box = pieces.dropFirst().reduce(pieces[0].box) {
            Box(x0: min($0.x0, $1.box.x0), y0: min($0.y0, $1.box.y0), x1: max($0.x1, $1.box.x1), y1: max($0.y1, $1.box.y1))
        }
        let total = pieces.map(\.score).reduce(0, +)
        var probs = [Double](repeating: 0, count: pieces[0].classProbabilities.count)
        for p in pieces { for c in probs.indices { probs[c] += p.score * p.classProbabilities[c] / max(total, 1e-12) } }
        var soft: ProbabilityMap?
        if let n0 = pieces.compactMap(\.softMask).first?.width {
            let n = 2 * n0
            var values = [Float](repeating: 0, count: n * n)
            for j in 0..<n {
                let y = box.y0 + (Float(j) + 0.5) * box.height / Float(n)
                for i in 0..<n {
                    let x = box.x0 + (Float(i) + 0.5) * box.width / Float(n)
                    for p in pieces { if let m = p.softMask { values[j * n + i] = max(values[j * n + i], m.softMaskProbability(over: p.box, x: x, y: y)) } }
                }
            }
            soft = ProbabilityMap(channels: 1, width: n, height: n, probabilities: values)
        }
        return PlacedDetection(box: box, score: pieces.map(\.score).max()!, classProbabilities: probs, softMask: soft, tile: pieces[0].tile)
    }

    /// The share of `a` that lies inside `b`.
    private static func coverage(of a: Box, by b: Box) -> Double {
        let w = min(a.x1, b.x1) - max(a.x0, b.x0), h = min(a.y1, b.y1) - max(a.y0, b.y0)
        guard w > 0, h > 0, a.area > 0 else { return 0 }
        return Double(w * h / a.area)
    }

    /// Overlapping tiles are blended with weights that fall towards a tile's inner edges, where
    /// the network saw the least context.
    private static func blendSemantic(_ arts: [TileArtifact], image: String, width: Int, height: Int,
                                      config: EnsembleConfig) throws -> SemanticPlanes {
        let n = width * height, nc = config.classes.count
        var fg = [Float](repeating: 0, count: n)
        var cls = [Float](repeating: 0, count: n * nc)
        var wsum = [Float](repeating: 0, count: n)
        for a in arts {
            guard let s = a.semantic else {
                throw EnsembleError.badArtifact(image: image, tile: a.tile.description, reason: "upernet artifact has no semantic map")
            }
            guard s.channels == a.classes.count + 1, s.width == a.tile.width, s.height == a.tile.height else {
                throw EnsembleError.badArtifact(image: image, tile: a.tile.description,
                                                reason: "upernet map is \(s.channels)x\(s.width)x\(s.height), expected \(a.classes.count + 1)x\(a.tile.width)x\(a.tile.height) (background + classes at tile size)")
            }
            let map = try classMap(a, image: image, config: config, semantic: true)
            let big = Int.max / 4
            s.values.withUnsafeBufferPointer { v in
                let plane = s.width * s.height
                for y in 0..<s.height {
                    let dy = min(a.tile.y > 0 ? y : big, a.tile.maxY < height ? s.height - 1 - y : big)
                    for x in 0..<s.width {
                        let dx = min(a.tile.x > 0 ? x : big, a.tile.maxX < width ? s.width - 1 - x : big)
                        let w = Float(min(min(dx, dy), 64) + 1)
                        let src = y * s.width + x
                        let dst = (a.tile.y + y) * width + a.tile.x + x
                        wsum[dst] += w
                        // Foreground is the cell classes together: a separator (boundary) pixel
                        // between touching cells is no cell's, which keeps the cells apart.
                        for (c, ci) in map.enumerated() where ci >= 0 {
                            let p = w * ProbabilityMap.probability(level: Float(v[(c + 1) * plane + src]))
                            cls[ci * n + dst] += p
                            fg[dst] += p
                        }
                    }
                }
            }
        }
        for p in 0..<n where wsum[p] > 0 {
            let inv = 1 / wsum[p]
            fg[p] *= inv
            for c in 0..<nc { cls[c * n + p] *= inv }
        }
        return SemanticPlanes(foreground: fg, classes: cls)
    }
}
