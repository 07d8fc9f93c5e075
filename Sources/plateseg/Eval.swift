import ArgumentParser
import Ensemble
import Foundation
import Imaging
import JobStore
import Pipeline

/// What `eval` scores: one of `ScoredOutput`, or all of them side by side.
enum Scored: String, ExpressibleByArgument, CaseIterable {
    case ensemble, yolox, maskrcnn, upernet, all
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score the segmentation against annotations with the Sartorius metric (mAP over IoU 0.50–0.95).",
        discussion: "Images are matched by file name without extension to the truth's image ids.")

    @OptionGroup var store: StoreOptions
    @Option(help: "Annotations: the competition CSV (id,annotation,width,height,cell_type) or COCO json.") var truth: String
    @Option var plate: String?
    @Option(help: "ensemble (stored cells), one model alone, or all of them side by side.") var model: Scored = .ensemble
    @Option(help: "Folder with ensemble.json (for re-merging single models).") var modelsDir: String = "models"
    @Flag(help: "Print the score of every image.") var perImage = false

    func run() throws {
        let db = try store.openForReading()
        let truthFile = try GroundTruth.read(path: truth)
        for e in truthFile.errors { print("truth: \(e)") }
        for r in truthFile.repeats { print("truth: \(r)") }
        let evaluation = try Evaluation(db, truth: truthFile, truthPath: truth, plate: plate, modelsDir: modelsDir)
        let rows = try ScoredOutput(rawValue: model.rawValue).map { [$0] } ?? evaluation.everyOutput()
        var table = [["scored", "images", "score", "shsy5y", "astro", "cort", "cells/annotated", "count bias"]]
        var scoredAny = false
        for scored in rows {
            let result = try evaluation.score(scored)
            result.leftOut.forEach { print($0) }
            scoredAny = scoredAny || !result.imageScores.isEmpty
            let report = result.report
            let byType = ["shsy5y", "astro", "cort"].map { report.groups["cell type"]?[$0].map { String(format: "%.3f", $0.score) } ?? "-" }
            table.append([scored.rawValue, "\(result.imageScores.count)", report.score.map { String(format: "%.3f", $0) } ?? "-"] + byType
                         + ["\(report.predictedCells)/\(report.annotatedCells)", String(format: "%+.1f %%", report.countBias * 100)])
            if perImage {
                for (id, s) in result.imageScores.sorted(by: { $0.key < $1.key }) {
                    print("  \(scored.rawValue) \(id) [\(result.cellTypes[id] ?? "?")] \(String(format: "%.3f", s.score)), \(s.predictedCells) cells of \(s.annotatedCells) annotated")
                }
            }
            if rows.count == 1, let wellGroups = report.groups["well"], !wellGroups.isEmpty {
                print("Per well:")
                for (well, g) in wellGroups.sorted(by: { $0.key < $1.key }) {
                    print("  \(well): \(String(format: "%.3f", g.score)) over \(g.images) image(s), \(g.predictedCells) cells of \(g.annotatedCells) annotated")
                }
            }
        }
        guard scoredAny else {
            throw CommandError("nothing scored: each of the \(evaluation.images.count) annotated image(s) was left out, as said above")
        }
        printTable(table)
        if rows.contains(.ensemble) {
            // Right after `calibrate` the stored cells are still the old fit's merges, while the
            // single-network rows are re-merged with the new ensemble.json: say which is which.
            let plates = Set(evaluation.images.map(\.plate)).sorted()
            for (p, stale) in try StaleResults.find(in: db, plates: plates, modelsDir: modelsDir).sorted(by: { $0.key < $1.key }) {
                print("note: \(stale.describe(plate: p)) than those in \(modelsDir): the ensemble row scores those stored cells; `plateseg run --redo-stale` makes them again")
            }
        }
    }
}

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit the ensemble's model weights and thresholds on annotated images (a validation split) and write ensemble.json.")

    @OptionGroup var store: StoreOptions
    @Option(help: "Annotations of the validation images.") var truth: String
    @Option var plate: String?
    @Option(help: "Name of the split, recorded in the config.") var split: String = "val"
    @Option(help: "Where to write the fitted config.") var out: String = "models/ensemble.json"
    @Option(help: "Also fit on all folds but one and score the one left out, for each of this many folds of the images (each cell type spread evenly): the score a fit reaches on images it has not seen. 0: no cross-validation.")
    var folds: Int = 0
    @Option(help: "Only accept configs whose cell count per image is, on the median image of each cell type, within this share of the annotated count (0.2: 20 %); 'off' fits the score alone, which rewards dropping doubtful cells and undercounts.")
    var countTolerance: CountTolerance = CountTolerance(share: 0.2)

    func validate() throws {
        if folds == 1 || folds < 0 { throw ValidationError("--folds \(folds): give 0 (none) or at least 2") }
    }

    func run() throws {
        let db = try store.openForReading()
        let images = try Calibration.images(from: db, truth: try GroundTruth.read(path: truth), plate: plate)
        guard !images.isEmpty else { throw EvaluationError("no image of \(plate ?? "any plate") in \(db.location) has both annotations in \(truth) and stored tile outputs; run the plate first (after `plateseg prune` run it again with `plateseg retry`)") }
        let ran = Set(images.flatMap { $0.artifacts.compactMap { EnsembleModel(artifactModel: $0.model) } })
        print("fitting on \(images.count) images with \(ran.map(\.rawValue).sorted().joined(separator: ", ")) outputs"
              + (countTolerance.share.map { String(format: "; cell counts per type within %.0f %% of the annotated", $0 * 100) } ?? ""))
        // The cell-type weights are not fitted here (types are not in the score): a refit keeps
        // those of the config it replaces.
        var start = EnsembleConfig()
        let replaced = FileManager.default.fileExists(atPath: out) ? try EnsembleConfig.load(path: out) : nil
        if let replaced { start.typeWeights = replaced.typeWeights }
        var fitter = WeightFitter(start: start)
        fitter.countTolerance = countTolerance.share
        // The final fit also walks from the best, on all the images, of the folds' fits and the
        // config it replaces: a coordinate search can stop short of configs that fits on fewer
        // images (or on other networks' outputs) found. The folds themselves are never shown
        // anything, so the held-out score stays that of a plain fit.
        var shown = replaced.map { [$0] } ?? []
        if folds >= 2 {
            shown += try crossValidate(fitter, images, models: ran)
        }
        if !shown.isEmpty {
            print("the fit also walks from the best here of \(shown.count) configs fitted before ("
                  + [folds >= 2 ? "the folds'" : nil, replaced != nil ? "the one replaced" : nil].compactMap { $0 }.joined(separator: ", ") + ")")
        }
        let fitted = try fitter.fit(images, split: split, models: ran, alsoFrom: shown)
        try fitted.jsonData().write(to: URL(fileURLWithPath: out))
        print("fitted on \(images.count) images of split \(split); wrote \(out)")
        if let fit = fitted.fit {
            print(String(format: "score %.4f (start %.4f)", fit.score, fit.startScore))
            if let t = fit.countTolerance {
                for (type, wider) in (fit.widenedCountTolerance ?? [:]).sorted(by: { $0.key < $1.key }) {
                    print(String(format: "%@: no config tried counts it within %.0f %% of the annotated; fitted within %.0f %% instead",
                                 type.isEmpty ? "cells" : type, t * 100, wider * 100))
                }
                if let e = fit.worstCountError, e > max(t, fit.widenedCountTolerance?.values.max() ?? t) + 1e-9 {
                    print(String(format: "the fit is still outside (the worst type is %.0f %% off, below): the one least outside, "
                                 + "summed over the types, was fitted", e * 100))
                }
            }
        }
        print(Self.byType(try fitter.report(fitted, on: images, models: ran), heading: "fitted, on the images it was fitted on"))
    }

    /// Score, cells found against cells annotated, and the count bias (median over images of
    /// (found − annotated) / annotated), per cell type.
    static func byType(_ report: MetricReport, heading: String) -> String {
        var lines = ["\(heading):", "  type     images  score   cells/annotated  count bias"]
        func line(_ name: String, _ score: Double, _ images: Int, _ found: Int, _ annotated: Int, _ bias: Double) -> String {
            let cells = "\(found)/\(annotated)"
            let padded = String(repeating: " ", count: max(0, 15 - cells.count)) + cells
            let head = "  " + name + String(repeating: " ", count: max(0, 8 - name.count))
            return head + String(format: " %6d  %.4f  ", images, score) + padded + String(format: "  %+9.1f %%", bias * 100)
        }
        for (type, g) in (report.groups["cell type"] ?? [:]).sorted(by: { $0.key < $1.key }) {
            lines.append(line(type, g.score, g.images, g.predictedCells, g.annotatedCells, g.countBias))
        }
        lines.append(line("all", report.score ?? 0, report.images.count, report.predictedCells, report.annotatedCells, report.countBias))
        return lines.joined(separator: "\n")
    }

    /// The folds' fitted configs.
    private func crossValidate(_ fitter: WeightFitter, _ images: [CalibrationImage], models: Set<EnsembleModel>) throws -> [EnsembleConfig] {
        let cv = try Calibration.crossValidate(fitter, images, folds: folds, split: split, models: models)
        for (k, f) in cv.folds.enumerated() {
            let inSample = f.fitted.fit.map { String(format: "%.4f", $0.score) } ?? "-"
            print("fold \(k): \(f.imageScores.count) images held out, score " + String(format: "%.4f", f.score)
                  + " (fitted on the other \(images.count - f.imageScores.count): \(inSample) there)")
        }
        print(Self.byType(cv.heldOut, heading: "cross-validated (\(folds) folds): each image scored by the fit of the other folds"))
        return cv.folds.map(\.fitted)
    }
}

/// A share of the annotated count, or "off".
struct CountTolerance: ExpressibleByArgument {
    var share: Double?

    init(share: Double?) { self.share = share }

    init?(argument: String) {
        if argument == "off" { share = nil; return }
        guard let v = Double(argument), v >= 0 else { return nil }
        share = v
    }

    var defaultValueDescription: String { share.map { "\($0)" } ?? "off" }
}
