import Ensemble
import Foundation
import Imaging
import JobStore

/// Fitting the ensemble on annotated images of a plate that has run: the images with their
/// stored tile outputs, and cross-validation over folds that each hold every cell type's share.
public enum Calibration {
    /// The plate's annotated images whose tile outputs are stored; a plate whose annotated
    /// images all had theirs removed after their merges is one line saying how to keep them.
    public static func images(from db: any JobStore, truth: GroundTruth, plate: String?) throws -> [CalibrationImage] {
        let truthByID = Dictionary(truth.images.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var images: [CalibrationImage] = []
        var removed: Set<String> = []
        let (annotated, ids) = try Evaluation.annotated(try db.images(plate: plate), plates: try db.plates(), truth: truth, truthPath: "the annotations")
        for image in annotated {
            guard let t = truthByID[ids[image.id]!], let merge = image.mergeJobID else { continue }
            let artifacts = try db.dependencyArtifacts(of: merge)
            guard !artifacts.isEmpty else { continue }
            guard artifacts.allSatisfy({ !$0.bytes.isEmpty }) else {
                removed.insert(image.plate)
                continue
            }
            images.append(CalibrationImage(
                image: image.path, width: image.width, height: image.height,
                artifacts: try artifacts.map { try TileArtifact.decode($0.bytes, name: "job \($0.jobID)") }, truth: t.masks,
                cellType: t.cellType))
        }
        if images.isEmpty, let plate = removed.sorted().first {
            throw EvaluationError(TileOutputs.neededMessage(plate: plate, purpose: "`plateseg calibrate`"))
        }
        return images
    }

    /// Each image's fold, 0..<count: round robin within each cell type, in image order, so that
    /// every fold holds each type's share.
    public static func folds(of images: [CalibrationImage], count: Int) -> [Int] {
        var fold = [Int](repeating: 0, count: images.count)
        var seen: [String: Int] = [:]
        let typeOf = images.map { $0.cellType ?? "" }
        for i in images.indices.sorted(by: { (typeOf[$0], images[$0].image) < (typeOf[$1], images[$1].image) }) {
            fold[i] = seen[typeOf[i], default: 0] % count
            seen[typeOf[i], default: 0] += 1
        }
        return fold
    }

    /// Fits on all folds but one and scores the one left out, for each fold.
    public static func crossValidate(_ fitter: WeightFitter, _ images: [CalibrationImage], folds count: Int, split: String,
                                     models: Set<EnsembleModel>) throws -> CrossValidation {
        guard images.count >= count else { throw EvaluationError("--folds \(count): only \(images.count) annotated images") }
        let folds = try fitter.crossValidate(images, folds: folds(of: images, count: count), split: split, models: models)
        var byImage: [String: SartoriusMetric.ImageScore] = [:]
        for f in folds { byImage.merge(f.imageScores) { a, _ in a } }
        let report = MetricReport(images: byImage, groupings: WeightFitter.cellTypeGrouping(images.map { ($0.image, $0.cellType) }))
        return CrossValidation(folds: folds, heldOut: report)
    }
}

/// Each fold's fit and held-out score, and every image scored by the fit that did not see it.
public struct CrossValidation: Sendable {
    public var folds: [WeightFitter.HeldOutFold]
    public var heldOut: MetricReport
}

extension Calibration {
    /// Fits the ensemble's weights and thresholds on `images` and writes the config to `out`,
    /// telling `say` what it does and what the fit reaches. With `folds` ≥ 2 every image is also
    /// scored by a fit on the other folds: the score a fit reaches on images it has not seen.
    /// `countTolerance`: the share of the annotated count each type's median image must stay
    /// within; nil fits the score alone.
    public static func fit(_ images: [CalibrationImage], split: String, folds: Int, countTolerance: Double?, out: String,
                           say: (String) -> Void) throws {
        let ran = Set(images.flatMap { $0.artifacts.compactMap { EnsembleModel(artifactModel: $0.model) } })
        say("fitting on \(images.count) images with \(ran.map(\.rawValue).sorted().joined(separator: ", ")) outputs"
            + (countTolerance.map { String(format: "; cell counts per type within %.0f %% of the annotated", $0 * 100) } ?? ""))
        // The cell-type weights are not fitted here (types are not in the score): a refit keeps
        // those of the config it replaces.
        var start = EnsembleConfig()
        let replaced = FileManager.default.fileExists(atPath: out) ? try EnsembleConfig.load(path: out) : nil
        if let replaced { start.typeWeights = replaced.typeWeights }
        var fitter = WeightFitter(start: start)
        fitter.countTolerance = countTolerance
        // The final fit also walks from the best, on all the images, of the folds' fits and the
        // config it replaces: a coordinate search can stop short of configs that fits on fewer
        // images (or on other networks' outputs) found. The folds themselves are never shown
        // anything, so the held-out score stays that of a plain fit.
        var shown = replaced.map { [$0] } ?? []
        if folds >= 2 {
            let cv = try crossValidate(fitter, images, folds: folds, split: split, models: ran)
            for (k, f) in cv.folds.enumerated() {
                let inSample = f.fitted.fit.map { String(format: "%.4f", $0.score) } ?? "-"
                say("fold \(k): \(f.imageScores.count) images held out, score " + String(format: "%.4f", f.score)
                    + " (fitted on the other \(images.count - f.imageScores.count): \(inSample) there)")
            }
            say(cv.heldOut.byType(heading: "cross-validated (\(folds) folds): each image scored by the fit of the other folds"))
            shown += cv.folds.map(\.fitted)
        }
        if !shown.isEmpty {
            say("the fit also walks from the best here of \(shown.count) configs fitted before ("
                + [folds >= 2 ? "the folds'" : nil, replaced != nil ? "the one replaced" : nil].compactMap { $0 }.joined(separator: ", ") + ")")
        }
        let fitted = try fitter.fit(images, split: split, models: ran, alsoFrom: shown)
        try fitted.jsonData().write(to: URL(fileURLWithPath: out))
        say("fitted on \(images.count) images of split \(split); wrote \(out)")
        if let fit = fitted.fit {
            say(String(format: "score %.4f (start %.4f)", fit.score, fit.startScore))
            if let t = fit.countTolerance {
                for (type, wider) in (fit.widenedCountTolerance ?? [:]).sorted(by: { $0.key < $1.key }) {
                    say(String(format: "%@: no config tried counts it within %.0f %% of the annotated; fitted within %.0f %% instead",
                               type.isEmpty ? "cells" : type, t * 100, wider * 100))
                }
                if let e = fit.worstCountError, e > max(t, fit.widenedCountTolerance?.values.max() ?? t) + 1e-9 {
                    say(String(format: "the fit is still outside (the worst type is %.0f %% off, below): the one least outside, "
                               + "summed over the types, was fitted", e * 100))
                }
            }
        }
        say(try fitter.report(fitted, on: images, models: ran).byType(heading: "fitted, on the images it was fitted on"))
    }
}

extension MetricReport {
    /// Score, cells found against cells annotated, and the count bias (median over images of
    /// (found − annotated) / annotated), per cell type and for all.
    public func byType(heading: String) -> String {
        var lines = ["\(heading):", "  type     images  score   cells/annotated  count bias"]
        func line(_ name: String, _ score: Double, _ images: Int, _ found: Int, _ annotated: Int, _ bias: Double) -> String {
            let cells = "\(found)/\(annotated)"
            let padded = String(repeating: " ", count: max(0, 15 - cells.count)) + cells
            let head = "  " + name + String(repeating: " ", count: max(0, 8 - name.count))
            return head + String(format: " %6d  %.4f  ", images, score) + padded + String(format: "  %+9.1f %%", bias * 100)
        }
        for (type, g) in (groups["cell type"] ?? [:]).sorted(by: { $0.key < $1.key }) {
            lines.append(line(type, g.score, g.images, g.predictedCells, g.annotatedCells, g.countBias))
        }
        lines.append(line("all", score ?? 0, images.count, predictedCells, annotatedCells, countBias))
        return lines.joined(separator: "\n")
    }
}
