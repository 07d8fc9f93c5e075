import Foundation
import Imaging
import Testing
@testable import Ensemble

enum FitScenes {
    static let size = (160, 120)

    /// Non-overlapping discs scattered over the image.
    static func cells(seed: UInt64, count: Int = 10) -> [Mask] {
        var rng = SeededRandom(seed: seed)
        var placed: [(Double, Double, Double)] = []
        while placed.count < count {
            let r = Double.random(in: 5...11, using: &rng)
            let x = Double.random(in: r...(Double(size.0) - r), using: &rng)
            let y = Double.random(in: r...(Double(size.1) - r), using: &rng)
            if placed.allSatisfy({ hypot($0.0 - x, $0.1 - y) > $0.2 + r + 3 }) { placed.append((x, y, r)) }
        }
        return placed.map { disc($0.0, $0.1, $0.2, image: size) }
    }

    /// Perfect detectors; UPerNet replaced by uniform noise when `noisySemantic`, YOLOX boxes
    /// replaced by confident random boxes when `noisyBoxes`.
    static func image(seed: UInt64, noisySemantic: Bool = false, noisyBoxes: Bool = false) -> CalibrationImage {
        let truth = cells(seed: seed)
        var rng = SeededRandom(seed: seed ^ 0xABCDEF)
        let artifacts = PerfectModels.artifacts(masks: truth, cellType: "astro", width: size.0, height: size.1).map { a -> TileArtifact in
            var a = a
            if noisySemantic, let s = a.semantic {
                let plane = s.width * s.height
                var p = [Float](repeating: 0, count: s.channels * plane)
                for i in 0..<plane {
                    let fg = Float.random(in: 0...1, using: &rng)
                    p[i] = 1 - fg
                    p[2 * plane + i] = fg
                }
                a.semantic = ProbabilityMap(channels: s.channels, width: s.width, height: s.height, probabilities: p)
            }
            if noisyBoxes, a.model.hasPrefix("yolox") {
                a.detections = (0..<10).map { _ in
                    let x = Float.random(in: 0...140, using: &rng), y = Float.random(in: 0...100, using: &rng)
                    return Detection(box: Box(x0: x, y0: y, x1: x + Float.random(in: 8...20, using: &rng), y1: y + Float.random(in: 8...20, using: &rng)),
                                     score: 0.95, classProbabilities: [0, 1, 0])
                }
            }
            return a
        }
        return CalibrationImage(image: "scene\(seed)", width: size.0, height: size.1, artifacts: artifacts, truth: truth)
    }

    /// Half the cells found cleanly; the other half only by doubtful, misplaced detections
    /// (score 0.15, shifted by most of a radius) that cost more as false positives than they
    /// earn: the metric alone would drop them and count half the cells.
    static func halfDoubtful(seed: UInt64) -> CalibrationImage {
        let truth = cells(seed: seed)
        let shifted = truth[5...].map { m in
            let r = Double(m.box.width) / 2
            return disc(Double(m.box.x) + r + 0.8 * r, Double(m.box.y) + r, r, image: size)
        }
        // One tile per model at this size: detections come in the order of the masks given.
        let artifacts = PerfectModels.artifacts(masks: Array(truth[..<5]) + shifted, cellType: "cort",
                                                width: size.0, height: size.1).map { a -> TileArtifact in
            var a = a
            for i in a.detections.indices.dropFirst(5) { a.detections[i].score = 0.15 }
            return a
        }
        return CalibrationImage(image: "doubtful\(seed)", width: size.0, height: size.1, artifacts: artifacts,
                                truth: truth, cellType: "cort")
    }

    /// `clean` of the 10 cells found cleanly, the next `doubtful` only by doubtful misplaced
    /// detections (as in `halfDoubtful`), the rest by nothing.
    static func partlyFound(seed: UInt64, clean: Int, doubtful: Int, annotated: Int = 10) -> CalibrationImage {
        let truth = cells(seed: seed, count: annotated)
        let shifted = truth[clean..<(clean + doubtful)].map { m in
            let r = Double(m.box.width) / 2
            return disc(Double(m.box.x) + r + 0.8 * r, Double(m.box.y) + r, r, image: size)
        }
        let artifacts = PerfectModels.artifacts(masks: Array(truth[..<clean]) + shifted, cellType: "cort",
                                                width: size.0, height: size.1).map { a -> TileArtifact in
            var a = a
            for i in a.detections.indices.dropFirst(clean) { a.detections[i].score = 0.15 }
            return a
        }
        return CalibrationImage(image: "partly\(seed)", width: size.0, height: size.1, artifacts: artifacts,
                                truth: truth, cellType: "cort")
    }

    /// Cells no network sees: no config brings their type's count anywhere near.
    static func unseen(seed: UInt64) -> CalibrationImage {
        CalibrationImage(image: "unseen\(seed)", width: size.0, height: size.1,
                         artifacts: PerfectModels.artifacts(masks: [], cellType: "astro", width: size.0, height: size.1),
                         truth: cells(seed: seed), cellType: "astro")
    }
}

@Suite struct WeightFitterTests {
    func score(_ config: EnsembleConfig, _ images: [CalibrationImage]) throws -> Double {
        var total = 0.0
        for img in images {
            let merged = try Merger(config: config).merge(image: img.image, width: img.width, height: img.height, artifacts: img.artifacts)
            total += SartoriusMetric.score(predicted: merged.instances.map(\.mask), truth: img.truth).score
        }
        return total / Double(images.count)
    }

    @Test func aModelThatIsPureNoiseLosesItsWeight() throws {
        let images = (1...2).map { FitScenes.image(seed: UInt64($0), noisySemantic: true) }
        let fitted = try WeightFitter().fit(images, split: "noise-val")
        print("fit noisy upernet: \(fitted.modelWeights) \(fitted.fit!)")
        #expect(fitted.weight(.upernet) == 0)
        #expect(fitted.weight(.maskrcnn) > 0)
        let fit = try #require(fitted.fit)
        #expect(fit.split == "noise-val" && fit.images == 2)
        #expect(fit.score > fit.startScore)
        // The recorded score is the score of the returned config.
        #expect(abs(try score(fitted, images) - fit.score) < 1e-12)
    }

    @Test func confidentRandomBoxesLoseTheirWeight() throws {
        let images = (3...4).map { FitScenes.image(seed: UInt64($0), noisyBoxes: true) }
        let fitted = try WeightFitter().fit(images, split: "boxes-val")
        print("fit noisy yolox: \(fitted.modelWeights) \(fitted.fit!)")
        #expect(fitted.weight(.yolox) == 0)
        #expect(fitted.fit!.score > fitted.fit!.startScore)
    }

    @Test func theFitIsReproducible() throws {
        let images = [FitScenes.image(seed: 5, noisySemantic: true)]
        var fitter = WeightFitter()
        fitter.passes = 1
        #expect(try fitter.fit(images, split: "a") == fitter.fit(images, split: "a"))
    }

    /// Each fold is scored by the fit of the others alone: the figure a fit reaches on images it
    /// has not seen. Two noisy images and two clean ones, one of each per fold.
    @Test func crossValidationScoresEachImageOnceByAFitThatNeverSawIt() throws {
        let images = [FitScenes.image(seed: 7, noisySemantic: true), FitScenes.image(seed: 8),
                      FitScenes.image(seed: 9, noisySemantic: true), FitScenes.image(seed: 10)]
        var fitter = WeightFitter()
        fitter.passes = 1
        let folds = try fitter.crossValidate(images, folds: [0, 0, 1, 1], split: "cv")
        #expect(folds.count == 2)
        #expect(Set(folds.flatMap(\.imageScores.keys)) == Set(images.map(\.image)))
        for (k, fold) in folds.enumerated() {
            let train = k == 0 ? [images[2], images[3]] : [images[0], images[1]]
            let held = k == 0 ? [images[0], images[1]] : [images[2], images[3]]
            var alone = try fitter.fit(train, split: "cv without fold \(k)")
            #expect(fold.fitted == alone)
            alone.fit = nil
            #expect(abs(try score(alone, held) - fold.score) < 1e-12)
        }
    }

    /// With a count tolerance the fit keeps the doubtful cortical cells that the metric alone
    /// drops, and reports how far each count is off; astrocytes that no network sees cannot be
    /// brought inside it, and must not excuse the cortical count.
    @Test func aCountToleranceKeepsCellsTheMetricWouldDrop() throws {
        let images = [FitScenes.halfDoubtful(seed: 11), FitScenes.halfDoubtful(seed: 12), FitScenes.unseen(seed: 13)]
        func cortCells(_ r: MetricReport) -> Int? { r.groups["cell type"]?["cort"]?.predictedCells }
        var fitter = WeightFitter()
        fitter.passes = 1
        let free = try fitter.fit(images, split: "counts")
        let freeReport = try fitter.report(free, on: images)
        #expect(freeReport.groups["cell type"]?["cort"]?.annotatedCells == 20)
        #expect(try #require(cortCells(freeReport)) <= 12)

        fitter.countTolerance = 0.2
        let counted = try fitter.fit(images, split: "counts")
        let countedReport = try fitter.report(counted, on: images)
        #expect(abs(try #require(cortCells(countedReport)) - 20) <= 4)
        #expect(countedReport.groups["cell type"]?["astro"]?.predictedCells == 0)
        let fit = try #require(counted.fit)
        #expect(fit.countTolerance == 0.2 && fit.worstCountError == 1)
        // The astrocytes nobody sees widen only their own tolerance: the cortical count still holds.
        #expect(fit.widenedCountTolerance == ["astro": 1])
        // Keeping them costs score: the tolerance is what made the difference.
        let freeScore = try #require(free.fit).score
        #expect(fit.score < freeScore)
        #expect(abs((countedReport.score ?? -1) - fit.score) < 1e-12)
    }

    /// Counts within 20 % are out of reach (20.8 % under on the median image at best, and only
    /// by keeping a doubtful, misplaced detection); widened to 25 %, the fit drops it: 25 % under,
    /// a better score. Without the widening the search would buy that last point at any price.
    @Test func anUnreachableToleranceIsWidenedNotBoughtAtAnyPrice() throws {
        // Two images, so the median is their mean: 3 of 12 missed, and 2 (or 3 without the doubtful one).
        let images = [FitScenes.partlyFound(seed: 21, clean: 9, doubtful: 0, annotated: 12),
                      FitScenes.partlyFound(seed: 22, clean: 9, doubtful: 1, annotated: 12)]
        var fitter = WeightFitter()
        fitter.passes = 1
        fitter.countTolerance = 0.2
        let fitted = try fitter.fit(images, split: "widened")
        let fit = try #require(fitted.fit)
        #expect(fit.widenedCountTolerance == ["cort": 0.25])
        let cort = try #require(try fitter.report(fitted, on: images).groups["cell type"]?["cort"])
        #expect(abs(cort.countBias + 0.25) < 1e-9)
        #expect(cort.predictedCells == 18)

        var strict = fitter
        strict.countTolerance = 0.21
        let kept = try #require(try strict.fit(images, split: "reachable").fit)
        #expect(kept.widenedCountTolerance == nil && abs((kept.worstCountError ?? 0) - 5.0 / 24) < 1e-9)
        #expect(kept.score < fit.score)
    }

    /// Where the best config for the score alone already counts within the tolerance, the
    /// counted fit reaches at least its score: one of its walks into the tolerance starts there.
    @Test func theCountedFitKeepsTheScoresBestWhereItCountsWell() throws {
        let images = [FitScenes.image(seed: 41, noisySemantic: true), FitScenes.image(seed: 42, noisyBoxes: true),
                      FitScenes.image(seed: 43)]
        var fitter = WeightFitter()
        fitter.passes = 1
        let free = try #require(try fitter.fit(images, split: "free").fit)
        #expect((free.worstCountError ?? 1) <= 0.2)
        fitter.countTolerance = 0.2
        let counted = try #require(try fitter.fit(images, split: "counted").fit)
        #expect(counted.score >= free.score - 1e-12)
        #expect(abs(counted.startScore - free.startScore) < 1e-12)
    }

    /// A fit shown a config (a fold's fit, the config being replaced) never ends below it on
    /// the images, where that config counts within the tolerance; and here the search alone,
    /// one pass from a poor start on the score alone, does end below it.
    @Test func aFitShownAConfigEndsAtLeastWhereItScores() throws {
        let images = [FitScenes.image(seed: 51, noisySemantic: true, noisyBoxes: true),
                      FitScenes.image(seed: 52, noisyBoxes: true), FitScenes.image(seed: 53, noisySemantic: true),
                      FitScenes.halfDoubtful(seed: 54)]
        // UPerNet's vote alone, high thresholds: no single step from here reaches the others'.
        var poor = EnsembleConfig()
        poor.modelWeights = [.yolox: 0, .maskrcnn: 0, .upernet: 2]
        poor.pixelThreshold = 0.7
        poor.minInstanceScore = 0.6
        for tolerance in [nil, 0.2] {
            var fromDefaults = WeightFitter()
            fromDefaults.countTolerance = tolerance
            let good = try fromDefaults.fit(images, split: "good")
            let goodScore = try #require(good.fit).score
            var fitter = WeightFitter(start: poor)
            fitter.passes = 1
            fitter.countTolerance = tolerance
            let alone = try #require(try fitter.fit(images, split: "alone").fit)
            let shown = try #require(try fitter.fit(images, split: "shown", alsoFrom: [EnsembleConfig(), good]).fit)
            // Counted, the walk from the score's best already gets there on these scenes.
            if tolerance == nil { #expect(alone.score < goodScore - 1e-6) }
            if tolerance == nil || (good.fit?.worstCountError ?? 1) <= 0.2 {
                #expect(shown.score >= goodScore - 1e-12)
            }
            #expect(abs(shown.startScore - alone.startScore) < 1e-12)
        }
    }

    @Test func concurrentMapKeepsTheOrder() {
        #expect(concurrentMap(1000) { [String($0)] } == (0..<1000).map { [String($0)] })
    }

    /// Cell types are not in the score: the weights of their vote pass through a fit unchanged.
    @Test func typeWeightsSurviveTheFit() throws {
        var start = EnsembleConfig()
        start.typeWeights = [.maskrcnn: 0.25, .yolox: 1, .upernet: 1]
        var fitter = WeightFitter(start: start)
        fitter.passes = 1
        #expect(try fitter.fit([FitScenes.image(seed: 6)], split: "a").typeWeights == start.typeWeights)
    }
}
