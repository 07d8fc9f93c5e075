import Imaging

/// The Sartorius competition metric: mean over IoU thresholds 0.50, 0.55, …, 0.95 of
/// TP / (TP + FP + FN), per image, then mean over images.
public enum SartoriusMetric {
    public static let thresholds: [Double] = (0..<10).map { 0.5 + 0.05 * Double($0) }

    /// TP/FP/FN at one threshold.
    public struct Counts: Sendable, Equatable, Codable {
        public var threshold: Double
        public var truePositives: Int
        public var falsePositives: Int
        public var falseNegatives: Int

        public var precision: Double {
            let d = truePositives + falsePositives + falseNegatives
            return d == 0 ? 1 : Double(truePositives) / Double(d)
        }
    }

    public struct ImageScore: Sendable, Equatable, Codable {
        public var score: Double
        public var counts: [Counts]

        /// Cells predicted and annotated (every threshold counts the same masks).
        public var predictedCells: Int { counts.first.map { $0.truePositives + $0.falsePositives } ?? 0 }
        public var annotatedCells: Int { counts.first.map { $0.truePositives + $0.falseNegatives } ?? 0 }
        /// (found − annotated) / annotated: how far the count runs high (+) or low (−).
        public var countError: Double { Double(predictedCells - annotatedCells) / Double(max(1, annotatedCells)) }
    }

    /// Scores one image. Matches are one-to-one with IoU strictly above the threshold. With
    /// non-overlapping masks on both sides a match above 0.5 is unique, so any matching is the
    /// matching; truth masks do overlap a little in the real annotations, so the count is the
    /// maximum one-to-one matching (augmenting paths over the few candidate pairs), which is the
    /// same number whenever matches are unique.
    public static func score(predicted: [Mask], truth: [Mask]) -> ImageScore {
        scoreAndFit(predicted: predicted, truth: truth).score
    }

    /// The score, and the mean over true masks of their best IoU above 0.5 (0 when none): a
    /// finer measure of the same thing, used to break ties between configs of equal score.
    static func scoreAndFit(predicted: [Mask], truth: [Mask]) -> (score: ImageScore, meanIoU: Double) {
        // IoU of every pair whose boxes meet; all others are 0 and can never match.
        var candidates: [[(truth: Int, iou: Double)]] = Array(repeating: [], count: predicted.count)
        let truthBoxes = truth.map(\.box)
        for (p, pm) in predicted.enumerated() where pm.area > 0 {
            let b = pm.box
            for (t, tb) in truthBoxes.enumerated()
            where tb.x < b.maxX && b.x < tb.maxX && tb.y < b.maxY && b.y < tb.maxY {
                let iou = pm.iou(truth[t])
                if iou > thresholds[0] { candidates[p].append((t, iou)) }
            }
        }
        var counts: [Counts] = []
        for t in thresholds {
            let edges = candidates.map { $0.filter { $0.iou > t }.map(\.truth) }
            let tp = maximumMatching(edges, right: truth.count)
            counts.append(Counts(threshold: t, truePositives: tp, falsePositives: predicted.count - tp,
                                 falseNegatives: truth.count - tp))
        }
        let score = counts.map(\.precision).reduce(0, +) / Double(counts.count)
        var bestIoU = [Double](repeating: 0, count: truth.count)
        for list in candidates { for c in list { bestIoU[c.truth] = max(bestIoU[c.truth], c.iou) } }
        let meanIoU = truth.isEmpty ? (predicted.isEmpty ? 1 : 0) : bestIoU.reduce(0, +) / Double(truth.count)
        return (ImageScore(score: score, counts: counts), meanIoU)
    }

    /// Kuhn's augmenting paths; the graphs here have a handful of edges per node.
    static func maximumMatching(_ edges: [[Int]], right: Int) -> Int {
        var owner = [Int](repeating: -1, count: right)
        var matched = 0
        for left in edges.indices where !edges[left].isEmpty {
            var seen = [Bool](repeating: false, count: right)
            if augment(left, edges, &owner, &seen) { matched += 1 }
        }
        return matched
    }

    private static func augment(_ left: Int, _ edges: [[Int]], _ owner: inout [Int], _ seen: inout [Bool]) -> Bool {
        for r in edges[left] where !seen[r] {
            seen[r] = true
            if owner[r] < 0 || augment(owner[r], edges, &owner, &seen) {
                owner[r] = left
                return true
            }
        }
        return false
    }
}

/// The score of a set of images, overall and by groups the caller names (cell type, well, …).
public struct MetricReport: Sendable, Equatable, Codable {
    public struct Group: Sendable, Equatable, Codable {
        public var score: Double
        public var images: Int
        /// Cells predicted and annotated in its images: the metric rewards dropping doubtful
        /// cells, and a count is what a user reads, so both are reported.
        public var predictedCells: Int
        public var annotatedCells: Int
        /// Median of its images' `countError`: the typical image's, every image weighing the
        /// same. A sum would let one confluent image of hundreds of cells decide a type's bias,
        /// a mean one image of a few: an astrocyte val image annotates 5 cells and leaves more
        /// unannotated, and 31 found there read +520 %, enough to turn a type that most images
        /// undercount by a fifth into one overcounted by a sixth.
        public var countBias: Double
    }

    /// Mean image score; 0 images score nil.
    public var score: Double?
    public var predictedCells: Int
    public var annotatedCells: Int
    /// Median over all images of their `countError` (see `Group.countBias`).
    public var countBias: Double
    public var images: [String: SartoriusMetric.ImageScore]
    /// Group kind (e.g. "cell type", "well") → group name → mean over its images.
    public var groups: [String: [String: Group]]

    /// `groupings` maps a group kind to the group of each image; images it does not name are
    /// left out of that kind's groups but still count overall.
    public init(images: [String: SartoriusMetric.ImageScore], groupings: [String: [String: String]] = [:]) {
        self.images = images
        score = images.isEmpty ? nil : images.values.map(\.score).reduce(0, +) / Double(images.count)
        predictedCells = images.values.map(\.predictedCells).reduce(0, +)
        annotatedCells = images.values.map(\.annotatedCells).reduce(0, +)
        countBias = Self.median(images.values.map(\.countError))
        var groups: [String: [String: Group]] = [:]
        for (kind, groupOf) in groupings {
            var sums: [String: Group] = [:]
            var countErrors: [String: [Double]] = [:]
            for (image, s) in images {
                guard let g = groupOf[image] else { continue }
                var sum = sums[g] ?? Group(score: 0, images: 0, predictedCells: 0, annotatedCells: 0, countBias: 0)
                sum.score += s.score
                sum.images += 1
                sum.predictedCells += s.predictedCells
                sum.annotatedCells += s.annotatedCells
                sums[g] = sum
                countErrors[g, default: []].append(s.countError)
            }
            groups[kind] = Dictionary(uniqueKeysWithValues: sums.map { name, sum in
                var g = sum
                g.score /= Double(g.images)
                g.countBias = Self.median(countErrors[name] ?? [])
                return (name, g)
            })
        }
        self.groups = groups
    }

    /// 0 for none; the mean of the middle two for an even count.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let v = values.sorted(), m = v.count / 2
        return v.count % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2
    }
}
