import Imaging

/// One cell found in an image.
public struct CellInstance: Sendable, Equatable {
    public var cellType: String
    /// Over `EnsembleConfig.classes`, summing to 1.
    public var classProbabilities: [Double]
    public var score: Double
    public var mask: Mask
    /// The mask as a compressed COCO RLE string (column-major, pycocotools' `counts`).
    public var rle: String

    public var area: Int { mask.area }
    public var box: PixelRect { mask.box }
    public var centroid: (x: Double, y: Double) { mask.centroid }
}

/// The merge's result for one image: non-overlapping instances, most confident first.
public struct MergedImage: Sendable, Equatable {
    public var image: String
    public var width: Int
    public var height: Int
    /// The type most of its cells have; nil when it has none.
    public var cellType: String?
    /// The share of its cells of each type, over `EnsembleConfig.classes` (all 0 without cells).
    public var classProbabilities: [Double]
    public var instances: [CellInstance]
}

extension MergedImage {
    /// The overlay PNG of the image: each instance outlined in its cell type's colour.
    public func writeOverlay(on gray: GrayImage, to path: String) throws {
        try Overlay.write(gray, instances: instances.map { ($0.mask, $0.cellType) }, to: path)
    }
}

/// Fuses the three networks' tile outputs for one image into cell instances.
public struct Merger: Sendable {
    public var config: EnsembleConfig

    public init(config: EnsembleConfig = EnsembleConfig()) { self.config = config }

    /// `artifacts`: every tile of the image, for every model in `models` (artifacts of other
    /// models are ignored). The default merges all three; a single model gives that model's own
    /// instances, so each model can be scored alone. Throws `EnsembleError` naming the image and
    /// tile when an artifact is missing, of an unknown model, or of the wrong shape.
    public func merge(image: String, width: Int, height: Int, artifacts: [TileArtifact],
                      models: Set<EnsembleModel> = Set(EnsembleModel.allCases)) throws -> MergedImage {
        let stitched = try Stitcher.stitch(image: image, width: width, height: height, artifacts: artifacts,
                                           models: models, config: config)
        return vote(stitched, models: models)
    }

    func vote(_ s: StitchedImage, models: Set<EnsembleModel>) -> MergedImage {
        if models == [.upernet] { return semanticInstances(s) }
        if models.count == 1, let only = models.first, config.weight(only) != 1 {
            // A model scored alone is judged on its own output, whatever weight the fit gave it.
            var alone = self
            alone.config.modelWeights = [only: 1]
            return alone.vote(s, models: models)
        }
        var planes = OwnershipPlanes(width: s.width, height: s.height)
        let clusters = fuseBoxes(s, models: models)
        var windows: [(window: PixelRect, votes: [Float])] = []
        for (i, c) in clusters.enumerated() {
            let w = pixelVote(c, s, models: models)
            planes.claim(w.window, votes: w.votes, instance: Int32(i), threshold: Float(config.pixelThreshold))
            windows.append(w)
        }
        var instances: [CellInstance] = []
        for (i, c) in clusters.enumerated() {
            let window = windows[i].window
            var bits = planes.owned(window, instance: Int32(i))
            removeFragments(&bits, width: window.width, height: window.height, minArea: config.minFragmentArea)
            let mask = Mask(imageWidth: s.width, imageHeight: s.height, window: window, bits: bits)
            guard mask.area >= max(1, config.minInstanceArea) else { continue }
            if config.minKeptFraction > 0 {
                let wanted = windows[i].votes.reduce(0) { $1 > Float(config.pixelThreshold) ? $0 + 1 : $0 }
                guard Double(mask.area) >= config.minKeptFraction * Double(wanted) else { continue }
            }
            let probs = instanceClasses(c, mask: mask, s, models: models)
            instances.append(CellInstance(cellType: config.classes[argmax(probs)], classProbabilities: probs, score: c.score,
                                          mask: mask, rle: COCORLE(mask: mask).compressedString))
        }
        if models.contains(.upernet), let sem = s.semantic {
            config.growth.grow(&instances, foreground: sem.foreground, width: s.width, height: s.height)
        }
        return image(s, instances: instances)
    }

    /// The image's type is counted from its cells, not voted from raw detections: a few
    /// confident detections of one type (or thousands of faint ones) must not outvote the cells.
    private func image(_ s: StitchedImage, instances: [CellInstance]) -> MergedImage {
        var counts = [Double](repeating: 0, count: config.classes.count)
        for cell in instances { if let i = config.classes.firstIndex(of: cell.cellType) { counts[i] += 1 } }
        let shares = normalized(counts)
        return MergedImage(image: s.image, width: s.width, height: s.height,
                           cellType: instances.isEmpty ? nil : config.classes[argmax(shares)],
                           classProbabilities: shares, instances: instances)
    }

    // MARK: (a) box consensus

    struct Cluster {
        var box: Box
        /// The union of the member boxes: the vote's window, so that no member's mask is cut.
        var extent: Box
        /// The most confident member of each detecting model.
        var best: [EnsembleModel: PlacedDetection] = [:]
        /// Every member, by model: pieces of one cell cut by different seams, or a detector's
        /// own near-duplicates.
        var members: [EnsembleModel: [PlacedDetection]] = [:]
        var weightSum: Double = 0
        var sums: (Double, Double, Double, Double) = (0, 0, 0, 0)
        var score: Double = 0
    }

    /// Weighted box fusion: boxes, most confident first, join the cluster whose fused box they
    /// overlap most (IoU above `boxFusionIoU`); the fused box is the confidence × model-weight
    /// weighted mean of its members.
    func fuseBoxes(_ s: StitchedImage, models: Set<EnsembleModel>) -> [Cluster] {
        let boxModels = [EnsembleModel.yolox, .maskrcnn].filter { models.contains($0) && config.weight($0) > 0 }
        guard !boxModels.isEmpty else { return [] }
        var all: [(EnsembleModel, PlacedDetection)] = []
        for m in boxModels { all += (s.detections[m] ?? []).map { (m, $0) } }
        // Stable order: score, then model, so that the fit is reproducible.
        all = all.enumerated().sorted { a, b in
            a.element.1.score != b.element.1.score ? a.element.1.score > b.element.1.score : a.offset < b.offset
        }.map(\.element)
        var clusters: [Cluster] = []
        for (m, d) in all {
            var bestIoU = Float(config.boxFusionIoU), target = -1
            for (i, c) in clusters.enumerated() {
                let iou = c.box.iou(d.box)
                if iou > bestIoU { bestIoU = iou; target = i }
            }
            if target < 0 {
                clusters.append(Cluster(box: d.box, extent: d.box))
                target = clusters.count - 1
            }
            let w = d.score * config.weight(m)
            var c = clusters[target]
            c.weightSum += w
            c.sums.0 += w * Double(d.box.x0); c.sums.1 += w * Double(d.box.y0)
            c.sums.2 += w * Double(d.box.x1); c.sums.3 += w * Double(d.box.y1)
            if c.weightSum > 0 {
                c.box = Box(x0: Float(c.sums.0 / c.weightSum), y0: Float(c.sums.1 / c.weightSum),
                            x1: Float(c.sums.2 / c.weightSum), y1: Float(c.sums.3 / c.weightSum))
            }
            if c.best[m] == nil { c.best[m] = d }
            c.members[m, default: []].append(d)
            c.extent = Box(x0: min(c.extent.x0, d.box.x0), y0: min(c.extent.y0, d.box.y0),
                           x1: max(c.extent.x1, d.box.x1), y1: max(c.extent.y1, d.box.y1))
            clusters[target] = c
        }
        let total = boxModels.map { config.weight($0) }.reduce(0, +)
        for i in clusters.indices {
            let agreed = boxModels.map { m in config.weight(m) * (clusters[i].best[m]?.score ?? 0) }.reduce(0, +)
            clusters[i].score = agreed / total
        }
        return clusters.filter { $0.score >= minScore(detectorsCall: $0) }
            .enumerated().sorted { $0.element.score != $1.element.score ? $0.element.score > $1.element.score : $0.offset < $1.offset }
            .map(\.element)
    }

    /// The score a cluster must reach, by the cell type its detectors' weighted vote gives it.
    private func minScore(detectorsCall c: Cluster) -> Double {
        guard !config.minInstanceScoreByType.isEmpty else { return config.minInstanceScore }
        return config.minInstanceScoreByType[config.classes[argmax(detectorVotes(c, weight: config.weight))]] ?? config.minInstanceScore
    }

    /// The cell-type votes of a cluster's detectors: class probabilities × model weight × confidence.
    private func detectorVotes(_ c: Cluster, weight: (EnsembleModel) -> Double) -> [Double] {
        var votes = [Double](repeating: 0, count: config.classes.count)
        for (m, d) in c.best {
            let w = weight(m) * d.score
            for i in votes.indices { votes[i] += w * d.classProbabilities[i] }
        }
        return votes
    }

    // MARK: (b) pixel vote

    /// Each pixel of the cluster's window gets the weighted mean of the models' votes: the Mask
    /// R-CNN soft mask pasted bilinearly into its box, the YOLOX box (1 inside, 0 outside) and
    /// UPerNet's foreground probability; each weighted by model weight × confidence (the best
    /// member's score; for UPerNet its certainty at that pixel, max(p, 1 - p)). A detector with
    /// several members votes the most of them at each pixel, so that the pieces of a cell cut by
    /// seams in every tile add up to the whole cell. A detector that did not see this cell has no
    /// say in its shape.
    func pixelVote(_ c: Cluster, _ s: StitchedImage, models: Set<EnsembleModel>) -> (window: PixelRect, votes: [Float]) {
        let m = config.boxMargin, e = c.extent
        let x0 = max(0, Int(e.x0.rounded(.down)) - m), y0 = max(0, Int(e.y0.rounded(.down)) - m)
        let x1 = min(s.width, Int(e.x1.rounded(.up)) + m), y1 = min(s.height, Int(e.y1.rounded(.up)) + m)
        let window = PixelRect(x: x0, y: y0, width: max(0, x1 - x0), height: max(0, y1 - y0))
        var num = [Float](repeating: 0, count: window.area)
        var den = [Float](repeating: 0, count: window.area)
        guard window.area > 0 else { return (window, num) }

        var shape = [Float](repeating: 0, count: window.area)
        if let best = c.best[.maskrcnn] {
            let w = Float(config.weight(.maskrcnn) * best.score)
            for d in c.members[.maskrcnn] ?? [] {
                guard let soft = d.softMask else { continue }
                paste(soft, into: d.box, window: window) { i, v in shape[i] = max(shape[i], v) }
            }
            for i in shape.indices { num[i] += w * shape[i]; den[i] += w }
        }
        if let best = c.best[.yolox] {
            let w = Float(config.weight(.yolox) * best.score)
            for i in shape.indices { shape[i] = 0 }
            for d in c.members[.yolox] ?? [] {
                for y in 0..<window.height {
                    let cy = Float(window.y + y) + 0.5
                    guard cy >= d.box.y0 && cy < d.box.y1 else { continue }
                    for x in 0..<window.width {
                        let cx = Float(window.x + x) + 0.5
                        if cx >= d.box.x0 && cx < d.box.x1 { shape[y * window.width + x] = 1 }
                    }
                }
            }
            for i in shape.indices { num[i] += w * shape[i]; den[i] += w }
        }
        if models.contains(.upernet), let sem = s.semantic, config.weight(.upernet) > 0 {
            let wu = Float(config.weight(.upernet))
            for y in 0..<window.height {
                let row = (window.y + y) * s.width + window.x
                for x in 0..<window.width {
                    let p = sem.foreground[row + x]
                    let w = wu * max(p, 1 - p)
                    num[y * window.width + x] += w * p
                    den[y * window.width + x] += w
                }
            }
        }
        for i in num.indices { num[i] = den[i] > 0 ? num[i] / den[i] : 0 }
        return (window, num)
    }

    /// Resamples a square soft mask covering `box` onto the window's pixel centres and hands
    /// each value to `add`; outside the box Mask R-CNN votes 0, since it places the whole cell
    /// inside its box.
    private func paste(_ soft: ProbabilityMap, into box: Box, window: PixelRect, _ add: (Int, Float) -> Void) {
        let grid = BoxGrid(cells: soft.width, over: box)
        let columns: [BoxGrid.Stop?] = (0..<window.width).map { x in
            let cx = Float(window.x + x) + 0.5
            return cx >= box.x0 && cx < box.x1 ? grid.column(atX: cx) : nil
        }
        for y in 0..<window.height {
            let cy = Float(window.y + y) + 0.5
            guard cy >= box.y0, cy < box.y1 else {
                for x in 0..<window.width { add(y * window.width + x, 0) }
                continue
            }
            let row = grid.row(atY: cy)
            for x in 0..<window.width {
                add(y * window.width + x, columns[x].map { soft.probability(in: grid, row: row, column: $0) } ?? 0)
            }
        }
    }

    // MARK: (d) cell types

    private func instanceClasses(_ c: Cluster, mask: Mask, _ s: StitchedImage, models: Set<EnsembleModel>) -> [Double] {
        var votes = detectorVotes(c, weight: config.typeWeight)
        if models.contains(.upernet), let sem = s.semantic {
            addSemanticVote(sem, mask: mask, weight: config.typeWeight(.upernet), to: &votes)
        }
        if !votes.contains(where: { $0 > 0 }) { votes = detectorVotes(c, weight: config.weight) }  // no typing model saw it
        return normalized(votes)
    }

    /// UPerNet's class distribution over the mask's pixels, weighted by its mean foreground there.
    private func addSemanticVote(_ sem: SemanticPlanes, mask: Mask, weight: Double, to votes: inout [Double]) {
        guard weight > 0, mask.area > 0 else { return }
        let n = mask.imageWidth * mask.imageHeight
        var sums = [Double](repeating: 0, count: votes.count)
        var fg = 0.0
        let b = mask.box
        for y in 0..<b.height {
            for x in 0..<b.width where mask.bits[y * b.width + x] != 0 {
                let p = (b.y + y) * mask.imageWidth + b.x + x
                fg += Double(sem.foreground[p])
                for c in sums.indices { sums[c] += Double(sem.classes[c * n + p]) }
            }
        }
        let dist = normalized(sums)
        let confidence = fg / Double(mask.area)
        for c in votes.indices { votes[c] += weight * confidence * dist[c] }
    }

    // MARK: UPerNet alone

    /// Connected components of the thresholded foreground, scored by their mean foreground.
    func semanticInstances(_ s: StitchedImage) -> MergedImage {
        guard let sem = s.semantic else { return image(s, instances: []) }
        let t = Float(config.semanticThreshold)
        let on = sem.foreground.map { $0 > t ? UInt8(1) : 0 }
        let (labels, count) = components(on, width: s.width, height: s.height)
        var pixels = [[Int]](repeating: [], count: count)
        for (p, l) in labels.enumerated() where l > 0 { pixels[Int(l) - 1].append(p) }
        var found: [CellInstance] = []
        for list in pixels where list.count >= max(1, config.minInstanceArea) {
            var minX = Int.max, minY = Int.max, maxX = 0, maxY = 0
            var fg = 0.0
            for p in list {
                let x = p % s.width, y = p / s.width
                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
                fg += Double(sem.foreground[p])
            }
            let window = PixelRect(x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1)
            var bits = [UInt8](repeating: 0, count: window.area)
            for p in list { bits[(p / s.width - minY) * window.width + p % s.width - minX] = 1 }
            let mask = Mask(imageWidth: s.width, imageHeight: s.height, window: window, bits: bits)
            var votes = [Double](repeating: 0, count: config.classes.count)
            addSemanticVote(sem, mask: mask, weight: 1, to: &votes)
            let probs = normalized(votes)
            found.append(CellInstance(cellType: config.classes[argmax(probs)], classProbabilities: probs,
                                      score: fg / Double(list.count), mask: mask, rle: COCORLE(mask: mask).compressedString))
        }
        return image(s, instances: found.enumerated().sorted {
            $0.element.score != $1.element.score ? $0.element.score > $1.element.score : $0.offset < $1.offset
        }.map(\.element))
    }
}

// MARK: (c) non-overlapping masks

/// Image-sized planes of the best vote so far and its instance: a pixel goes to the instance
/// that voted for it most (ties to the more confident instance, which claims first).
struct OwnershipPlanes {
    let width: Int
    var best: [Float]
    var owner: [Int32]

    init(width: Int, height: Int) {
        self.width = width
        best = [Float](repeating: 0, count: width * height)
        owner = [Int32](repeating: -1, count: width * height)
    }

    mutating func claim(_ window: PixelRect, votes: [Float], instance: Int32, threshold: Float) {
        for y in 0..<window.height {
            let row = (window.y + y) * width + window.x
            for x in 0..<window.width {
                let v = votes[y * window.width + x]
                if v > threshold && v > best[row + x] {
                    best[row + x] = v
                    owner[row + x] = instance
                }
            }
        }
    }

    func owned(_ window: PixelRect, instance: Int32) -> [UInt8] {
        var bits = [UInt8](repeating: 0, count: window.area)
        for y in 0..<window.height {
            let row = (window.y + y) * width + window.x
            for x in 0..<window.width where owner[row + x] == instance { bits[y * window.width + x] = 1 }
        }
        return bits
    }
}

/// Clears 4-connected pieces smaller than `minArea`: slivers left where a neighbour won most
/// of the pixels.
func removeFragments(_ bits: inout [UInt8], width: Int, height: Int, minArea: Int) {
    guard minArea > 1 else { return }
    let (labels, count) = components(bits, width: width, height: height)
    guard count > 0 else { return }
    var sizes = [Int](repeating: 0, count: count + 1)
    for l in labels { sizes[Int(l)] += 1 }
    for i in bits.indices where labels[i] > 0 && sizes[Int(labels[i])] < minArea { bits[i] = 0 }
}

/// 4-connected component labels (1-based; 0 = unset) and their number.
func components(_ bits: [UInt8], width: Int, height: Int) -> ([Int32], Int) {
    var labels = [Int32](repeating: 0, count: bits.count)
    var count: Int32 = 0
    var stack: [Int] = []
    for start in bits.indices where bits[start] != 0 && labels[start] == 0 {
        count += 1
        labels[start] = count
        stack.append(start)
        while let p = stack.popLast() {
            let x = p % width, y = p / width
            func visit(_ q: Int) {
                if bits[q] != 0 && labels[q] == 0 {
                    labels[q] = count
                    stack.append(q)
                }
            }
            if x > 0 { visit(p - 1) }
            if x < width - 1 { visit(p + 1) }
            if y > 0 { visit(p - width) }
            if y < height - 1 { visit(p + width) }
        }
    }
    return (labels, Int(count))
}

func normalized(_ v: [Double]) -> [Double] {
    let s = v.reduce(0, +)
    return s > 0 ? v.map { $0 / s } : v
}

func argmax(_ v: [Double]) -> Int {
    var best = 0
    for i in v.indices where v[i] > v[best] { best = i }
    return best
}
