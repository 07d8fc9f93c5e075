import Imaging

/// One validation image: the models' artifacts for all its tiles and its true masks.
public struct CalibrationImage: Sendable {
    public var image: String
    public var width: Int
    public var height: Int
    public var artifacts: [TileArtifact]
    public var truth: [Mask]
    /// The annotated cell type of the image; cells are counted per type.
    public var cellType: String?

    public init(image: String, width: Int, height: Int, artifacts: [TileArtifact], truth: [Mask], cellType: String? = nil) {
        self.image = image
        self.width = width
        self.height = height
        self.artifacts = artifacts
        self.truth = truth
        self.cellType = cellType
    }
}

/// Adaptive weights: a coordinate search over the model weights and the main thresholds that
/// maximises the Sartorius score of the merge on a validation split (ties broken by the mean
/// IoU of the true masks), among the configs that count each cell type's cells closely enough
/// when `countTolerance` is given. Deterministic: fixed candidate grids visited in a fixed order, a
/// change kept only when it strictly improves, so the same split and start always give the
/// same config.
public struct WeightFitter: Sendable {
    /// Where the search begins; its stitching values and cell-type weights are never searched.
    public var start: EnsembleConfig
    /// Full passes over all coordinates at most; the search stops early when a pass changes nothing.
    public var passes: Int = 3
    /// When set, a config counts as fitting only where, for every cell type, the cells it finds
    /// in the typical image are within this share of the cells annotated: |count bias| ≤
    /// tolerance (`MetricReport.Group.countBias`). The metric rewards dropping doubtful cells,
    /// while a count per well is what a user reads. Among configs outside the tolerance the one
    /// with the least total overshoot over the types wins (a type that no config brings inside
    /// then costs the others nothing), so the search first walks in, then maximises the score;
    /// it walks in from `start`, from the best config for the score alone (and from the best of
    /// the configs `fit(alsoFrom:)` was shown), and keeps the best end.
    /// A type the search cannot bring inside has its own tolerance widened to what it reached,
    /// rounded up to 5 points, and the search runs again: otherwise the last points of an
    /// unreachable count would be bought at any price in score.
    public var countTolerance: Double?

    public static let weightGrid: [Double] = [0, 0.25, 0.5, 1, 2, 4]
    public static let pixelThresholdGrid: [Double] = [0.3, 0.4, 0.5, 0.6, 0.7]
    public static let instanceScoreGrid: [Double] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    public static let fusionIoUGrid: [Double] = [0.4, 0.55, 0.7]
    public static let keptFractionGrid: [Double] = [0, 0.3, 0.5, 0.7]
    public static let growthRadiusGrid: [Double] = [0, 10, 20, 40, 80]
    public static let growthThresholdGrid: [Double] = [0.2, 0.3, 0.5, 0.7]
    /// A widened count tolerance is rounded up to whole steps of 1 / this (5 points), so that a
    /// refit on nearly the same images lands on the same tolerance.
    static let widenedToleranceStepsPerUnit = 20.0
    /// Scores, count errors and IoUs closer than this are equal: sums over images in another
    /// order differ in the last bits, and a search must not move on such noise.
    static let tie = 1e-12

    public init(start: EnsembleConfig = EnsembleConfig()) { self.start = start }

    /// The fitted config, with `fit` naming `split`, its size, and the scores before and after.
    /// Throws the first `EnsembleError` of an image whose artifacts cannot be merged; leave such
    /// images out of the split rather than fit on part of it.
    /// `models`: the networks whose outputs the images carry (a plate may run fewer than three);
    /// only their weights are searched.
    /// `alsoFrom`: configs fitted before (on some of these images, such as the folds of a
    /// cross-validation, or the config being replaced); the search also walks from the one of
    /// them that does best here, so a fit never ends below a config it was shown that counts
    /// within the tolerance. Only their searched values are taken; stitching values and
    /// cell-type weights stay `start`'s.
    public func fit(_ images: [CalibrationImage], split: String,
                    models: Set<EnsembleModel> = Set(EnsembleModel.allCases),
                    alsoFrom seeds: [EnsembleConfig] = []) throws -> EnsembleConfig {
        fit(try stitch(images, models: models), split: split, models: models, seeds: seeds)
    }

    /// One fold of a cross-validation: the config fitted on the other folds, and how it scores
    /// on this fold's images, which the fit never saw.
    public struct HeldOutFold: Sendable {
        public var fitted: EnsembleConfig
        /// Each held-out image's Sartorius score (and counts) under `fitted`, by image.
        public var imageScores: [String: SartoriusMetric.ImageScore]
        public var score: Double { imageScores.isEmpty ? 0 : imageScores.values.map(\.score).reduce(0, +) / Double(imageScores.count) }
    }

    /// k-fold cross-validation of the fit: `folds[i]` is image i's fold. A fit scored on the
    /// images it was fitted on flatters itself; the mean held-out score is the honest figure.
    public func crossValidate(_ images: [CalibrationImage], folds: [Int], split: String,
                              models: Set<EnsembleModel> = Set(EnsembleModel.allCases)) throws -> [HeldOutFold] {
        precondition(folds.count == images.count, "one fold per image")
        let scored = try stitch(images, models: models)
        return Set(folds).sorted().map { k in
            let train = zip(scored, folds).filter { $0.1 != k }.map(\.0)
            let held = zip(scored, folds).filter { $0.1 == k }.map(\.0)
            let fitted = fit(train, split: "\(split) without fold \(k)", models: models, seeds: [])
            return HeldOutFold(fitted: fitted, imageScores: evaluate(fitted, on: held, models: models).report.images)
        }
    }

    /// How `config` scores on `images`, with cells counted, grouped by "cell type".
    public func report(_ config: EnsembleConfig, on images: [CalibrationImage],
                       models: Set<EnsembleModel> = Set(EnsembleModel.allCases)) throws -> MetricReport {
        evaluate(config, on: try stitch(images, models: models), models: models).report
    }

    private struct ScoredImage: Sendable {
        var stitched: StitchedImage
        var truth: [Mask]
        var cellType: String?
    }

    private func stitch(_ images: [CalibrationImage], models: Set<EnsembleModel>) throws -> [ScoredImage] {
        try images.map { img in
            ScoredImage(stitched: try Stitcher.stitch(image: img.image, width: img.width, height: img.height,
                                                      artifacts: img.artifacts, models: models, config: start),
                        truth: img.truth, cellType: img.cellType)
        }
    }

    /// The `MetricReport` groupings by the images' annotated cell type ("cell type"), for
    /// reports of fits and of held-out folds alike.
    public static func cellTypeGrouping(_ images: [(image: String, cellType: String?)]) -> [String: [String: String]] {
        ["cell type": Dictionary(images.compactMap { i in i.cellType.map { (i.image, $0) } }, uniquingKeysWith: { a, _ in a })]
    }

    private struct Evaluation {
        var report: MetricReport
        var meanIoU: Double
        var score: Double { report.score ?? 0 }
        /// |count bias| of each cell type (of all images together where none is typed).
        var countErrors: [String: Double] {
            let types = report.groups["cell type"] ?? [:]
            return types.isEmpty ? ["": abs(report.countBias)] : types.mapValues { abs($0.countBias) }
        }
    }

    private func evaluate(_ config: EnsembleConfig, on images: [ScoredImage], models: Set<EnsembleModel>) -> Evaluation {
        let merger = Merger(config: config)
        let results = concurrentMap(images.count) { i in
            SartoriusMetric.scoreAndFit(predicted: merger.vote(images[i].stitched, models: models).instances.map(\.mask),
                                        truth: images[i].truth)
        }
        var scores: [String: SartoriusMetric.ImageScore] = [:]
        var iou = 0.0
        for (image, r) in zip(images, results) {
            scores[image.stitched.image] = r.score
            iou += r.meanIoU
        }
        return Evaluation(report: MetricReport(images: scores, groupings: Self.cellTypeGrouping(images.map { ($0.stitched.image, $0.cellType) })),
                          meanIoU: images.isEmpty ? 0 : iou / Double(images.count))
    }

    private func fit(_ images: [ScoredImage], split: String, models: Set<EnsembleModel>, seeds: [EnsembleConfig]) -> EnsembleConfig {
        let counted = countTolerance != nil
        // Of the configs shown, the walk starts only from the best here: each walk costs a
        // full search, and the others' ends would mostly be the same basin.
        let seed = seeds.map(searchedValues(of:)).map { (config: $0, reached: evaluate($0, on: images, models: models)) }
            .max { isBetter($1.reached, than: $0.reached, counted: counted, widened: [:]) }?.config
        // With a count tolerance the search also walks in from where the score alone leads.
        // Walking in first, it is drawn by its first coordinates (the weights, under the start's
        // thresholds) to whatever counts closest there, and may never reach the basin of the
        // best score; from the score's best, it gives up only what the counts need.
        let scoreFirst = counted ? [search(images, from: start, split: split, models: models, counted: false, widened: [:]).config] : []
        let ends = ([start] + scoreFirst + (seed.map { [$0] } ?? [])).map { from in
            let first = search(images, from: from, split: split, models: models, counted: counted, widened: [:])
            guard let tolerance = countTolerance else { return first }
            let widened = first.reached.countErrors.filter { $0.value > tolerance + Self.tie }.mapValues(Self.roundedUpToStep)
            return widened.isEmpty ? first : search(images, from: from, split: split, models: models, counted: true, widened: widened)
        }
        // Compared within the tightest tolerance any was fitted to: a walk that had to widen a
        // type's did not reach what another reached. On equal ends the earlier walk wins.
        let tolerances = ends.map { $0.config.fit?.widenedCountTolerance ?? [:] }
        let tightest = tolerances.dropFirst().reduce(tolerances[0]) { a, b in
            Dictionary(uniqueKeysWithValues: a.compactMap { type, t in b[type].map { (type, min(t, $0)) } })
        }
        let best = ends.dropFirst().reduce(ends[0]) { isBetter($1.reached, than: $0.reached, counted: counted, widened: tightest) ? $1 : $0 }
        // The other walks recorded their own starts; the fit began at `start`, as the first walk did.
        var config = best.config
        config.fit?.startScore = ends[0].config.fit?.startScore ?? 0
        return config
    }

    /// `start` with the values the search moves taken from `config`.
    private func searchedValues(of config: EnsembleConfig) -> EnsembleConfig {
        var c = start
        c.modelWeights = config.modelWeights
        c.pixelThreshold = config.pixelThreshold
        c.minInstanceScore = config.minInstanceScore
        c.boxFusionIoU = config.boxFusionIoU
        c.minKeptFraction = config.minKeptFraction
        c.minInstanceScoreByType = config.minInstanceScoreByType
        c.growth = config.growth
        c.fit = nil
        return c
    }

    /// Inside the count tolerance first; then score; on equal scores the mean best IoU of the
    /// true masks decides, so that on a plateau of the step-shaped metric the search still moves
    /// towards cleaner masks. `counted`: whether the tolerance applies; `widened`: cell types
    /// whose count tolerance is not `countTolerance`.
    private func isBetter(_ a: Evaluation, than b: Evaluation, counted: Bool, widened: [String: Double]) -> Bool {
        func excess(_ e: Evaluation) -> Double {
            guard counted, let t = countTolerance else { return 0 }
            return e.countErrors.map { max(0, $0.value - (widened[$0.key] ?? t)) }.reduce(0, +)
        }
        let (ea, eb) = (excess(a), excess(b))
        if abs(ea - eb) > Self.tie { return ea < eb }
        return a.score > b.score + Self.tie || (abs(a.score - b.score) <= Self.tie && a.meanIoU > b.meanIoU + Self.tie)
    }

    /// A count error as a tolerance: up to the next step; an error on a step, give or take the
    /// last bits of its sum, stays on it.
    static func roundedUpToStep(_ error: Double) -> Double {
        (error * widenedToleranceStepsPerUnit - 1e-9).rounded(.up) / widenedToleranceStepsPerUnit
    }

    /// The coordinate search from `from`.
    private func search(_ images: [ScoredImage], from: EnsembleConfig, split: String, models: Set<EnsembleModel>,
                        counted: Bool, widened: [String: Double]) -> (config: EnsembleConfig, reached: Evaluation) {
        func evaluate(_ config: EnsembleConfig) -> Evaluation { self.evaluate(config, on: images, models: models) }
        func better(_ a: Evaluation, than b: Evaluation) -> Bool { isBetter(a, than: b, counted: counted, widened: widened) }

        typealias Coordinate = (grid: [Double], set: (inout EnsembleConfig, Double) -> Void)
        // With one network its weight only scales every vote alike: nothing to fit.
        var coordinates: [Coordinate] = (models.count > 1 ? EnsembleModel.allCases.filter(models.contains) : []).map { m in
            (Self.weightGrid, { (c: inout EnsembleConfig, v: Double) in c.modelWeights[m] = v })
        }
        coordinates += [
            (Self.pixelThresholdGrid, { $0.pixelThreshold = $1 }),
            (Self.instanceScoreGrid, { $0.minInstanceScore = $1 }),
            (Self.fusionIoUGrid, { $0.boxFusionIoU = $1 }),
            (Self.keptFractionGrid, { $0.minKeptFraction = $1 }),
        ]
        // Then each cell type's own threshold, starting from the common one found above.
        coordinates += start.classes.map { type in
            (Self.instanceScoreGrid, { (c: inout EnsembleConfig, v: Double) in c.minInstanceScoreByType[type] = v })
        }
        // And how far each type grows into UPerNet's foreground, where there is one. Reach and
        // foreground threshold trade against each other (a low threshold wants a long reach), so
        // they are searched together: one search separately is stuck where the other left it.
        if models.contains(.upernet) {
            // No growth is one candidate, whatever the threshold (which it leaves alone).
            let reaches = Self.growthRadiusGrid.map(Int.init)
            let pairs: [(threshold: Double?, radius: Int)] = [(nil, 0)]
                + Self.growthThresholdGrid.flatMap { t in reaches.filter { $0 > 0 }.map { (t, $0) } }
            coordinates += start.classes.map { type in
                (pairs.indices.map(Double.init), { (c: inout EnsembleConfig, v: Double) in
                    let pair = pairs[Int(v)]
                    c.growth.radiusByType[type] = pair.radius
                    if let t = pair.threshold { c.growth.foregroundThreshold = t }
                })
            }
        }

        var best = from
        best.fit = nil
        let startScore = evaluate(best)
        var bestScore = startScore
        for _ in 0..<max(1, passes) {
            var changed = false
            for coordinate in coordinates {
                for value in coordinate.grid {
                    var candidate = best
                    coordinate.set(&candidate, value)
                    guard candidate != best else { continue }
                    let score = evaluate(candidate)
                    if better(score, than: bestScore) {
                        best = candidate
                        bestScore = score
                        changed = true
                    }
                }
            }
            if !changed { break }
        }
        best.fit = EnsembleConfig.Fit(split: split, images: images.count, score: bestScore.score, startScore: startScore.score,
                                      worstCountError: bestScore.countErrors.values.max() ?? 0, countTolerance: countTolerance,
                                      widenedCountTolerance: widened.isEmpty ? nil : widened)
        return (best, bestScore)
    }
}
