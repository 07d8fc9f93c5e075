import ArgumentParser
import Ensemble
import Foundation
import Imaging
import JobStore

/// What `eval` scores: the stored ensemble cells, or one model's own instances re-merged from
/// its stored tile outputs (the paper's "each model alone" rows).
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
        let db = try store.open(mustExist: true)
        let truthFile = try GroundTruth.read(path: truth)
        for e in truthFile.errors { print("truth: \(e)") }
        let truthByID = Dictionary(truthFile.images.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let images = try db.images(plate: plate).filter { truthByID[Self.id(of: $0.path)] != nil }
        guard !images.isEmpty else {
            if !truthFile.errors.isEmpty {
                throw EvalError("\(truth): nothing left to score: \(truthFile.errors.count) row(s) above are unusable and no other annotated image is in \(db.location); fix those rows")
            }
            throw EvalError("no image of \(plate ?? "any plate") in \(db.location) has annotations in \(truth); ids are file names without extension")
        }
        var rows: [Scored] = [model]
        if model == .all {
            // Only the networks this plate ran, read from the first image's tile jobs.
            let ran = Set(try db.provenance(imageID: images[0].id).compactMap { try? InferJob(jobArgs: $0.args).model })
            rows = [Scored.yolox, .maskrcnn, .upernet].filter { ran.contains($0.rawValue) } + [.ensemble]
        }
        let storedCells = Dictionary(grouping: try db.cells(CellQuery(plate: plate)), by: \.imagePath)
        let merger = Merger(config: try Wiring.ensembleConfig(modelsDir: URL(fileURLWithPath: modelsDir).standardizedFileURL.path))
        var table = [["scored", "images", "score", "shsy5y", "astro", "cort", "cells/annotated", "count bias"]]
        for scored in rows {
            var scores: [String: SartoriusMetric.ImageScore] = [:]
            var types: [String: String] = [:]
            var wells: [String: String] = [:]
            for image in images {
                let id = Self.id(of: image.path)
                let t = truthByID[id]!
                // A transposed or rescaled truth would score as if it fitted.
                guard t.width == image.width && t.height == image.height else {
                    print("\(image.path): \(image.width)x\(image.height) pixels, but its annotations in \(truth) are \(t.width)x\(t.height); left out (give the annotations of this image)")
                    continue
                }
                do {
                    guard let predicted = try predictions(scored, image, db: db, merger: merger, storedCells: storedCells[image.path] ?? []) else {
                        print("\(image.path): not merged yet (merge job \(image.mergeState?.rawValue ?? "missing")); left out")
                        continue
                    }
                    scores[id] = SartoriusMetric.score(predicted: predicted, truth: t.masks)
                    types[id] = t.cellType
                    wells[id] = image.well
                } catch {
                    print("\(image.path): \(error); left out")
                }
            }
            let report = MetricReport(images: scores, groupings: ["cell type": types, "well": wells])
            let byType = ["shsy5y", "astro", "cort"].map { report.groups["cell type"]?[$0].map { String(format: "%.3f", $0.score) } ?? "-" }
            table.append([scored.rawValue, "\(scores.count)", report.score.map { String(format: "%.3f", $0) } ?? "-"] + byType
                         + ["\(report.predictedCells)/\(report.annotatedCells)", String(format: "%+.1f %%", report.countBias * 100)])
            if perImage {
                for (id, s) in scores.sorted(by: { $0.key < $1.key }) {
                    print("  \(scored.rawValue) \(id) [\(types[id] ?? "?")] \(String(format: "%.3f", s.score)), \(s.predictedCells) cells of \(s.annotatedCells) annotated")
                }
            }
            if rows.count == 1, let wellGroups = report.groups["well"], !wellGroups.isEmpty {
                print("Per well:")
                for (well, g) in wellGroups.sorted(by: { $0.key < $1.key }) {
                    print("  \(well): \(String(format: "%.3f", g.score)) over \(g.images) image(s), \(g.predictedCells) cells of \(g.annotatedCells) annotated")
                }
            }
        }
        printTable(table)
        if rows.contains(.ensemble) {
            // Right after `calibrate` the stored cells are still the old fit's merges, while the
            // single-network rows are re-merged with the new ensemble.json: say which is which.
            let plates = Set(images.map(\.plate)).sorted()
            for (p, stale) in try StaleResults.find(in: db, plates: plates, modelsDir: modelsDir).sorted(by: { $0.key < $1.key }) {
                print("note: \(stale.describe(plate: p)) than those in \(modelsDir): the ensemble row scores those stored cells; `plateseg run --redo-stale` makes them again")
            }
        }
    }

    static func id(of path: String) -> String {
        ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    private func predictions(_ scored: Scored, _ image: StoredImage, db: any JobStore, merger: Merger,
                             storedCells: [LocatedCell]) throws -> [Mask]? {
        guard let mergeJob = image.mergeJobID else { return nil }
        if scored == .ensemble {
            guard image.mergeState == .succeeded else { return nil }
            return try storedCells.map {
                try COCORLE(compressed: $0.cell.rle, width: image.width, height: image.height).mask()
            }
        }
        let kind = EnsembleModel(artifactModel: scored.rawValue)!
        let handler = MergeHandler(store: db, merger: merger)
        // The merge job's own arguments: a field resized to the networks' scale is merged at that
        // scale and its cells mapped back.
        let args = try db.provenance(imageID: image.id).first { $0.job == mergeJob }.map { try MergeJob(jobArgs: $0.args) }
            ?? MergeJob(image: image.path, width: image.width, height: image.height)
        let merged = try handler.merge(mergeJob, args, models: [kind])
        return MergeHandler.fieldMasks(merged, args).filter { !$0.isEmpty }
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
        let db = try store.open(mustExist: true)
        let truthFile = try GroundTruth.read(path: truth)
        let truthByID = Dictionary(truthFile.images.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var images: [CalibrationImage] = []
        for image in try db.images(plate: plate) {
            guard let t = truthByID[Eval.id(of: image.path)], let merge = image.mergeJobID else { continue }
            let artifacts = try db.dependencyArtifacts(of: merge)
            guard !artifacts.isEmpty else { continue }
            images.append(CalibrationImage(
                image: image.path, width: image.width, height: image.height,
                artifacts: try artifacts.map { try TileArtifact.decode($0.bytes, name: "job \($0.jobID)") }, truth: t.masks,
                cellType: t.cellType))
        }
        guard !images.isEmpty else { throw ValidationError("no annotated image with stored tile outputs; run the plate first") }
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
        guard images.count >= folds else { throw ValidationError("--folds \(folds): only \(images.count) annotated images") }
        // Round robin within each type, in image order: every fold holds each type's share.
        var fold = [Int](repeating: 0, count: images.count)
        var seen: [String: Int] = [:]
        let typeOf = images.map { $0.cellType ?? "" }
        for i in images.indices.sorted(by: { (typeOf[$0], images[$0].image) < (typeOf[$1], images[$1].image) }) {
            fold[i] = seen[typeOf[i], default: 0] % folds
            seen[typeOf[i], default: 0] += 1
        }
        let results = try fitter.crossValidate(images, folds: fold, split: split, models: models)
        var byImage: [String: SartoriusMetric.ImageScore] = [:]
        for (k, r) in results.enumerated() {
            byImage.merge(r.imageScores) { a, _ in a }
            let inSample = r.fitted.fit.map { String(format: "%.4f", $0.score) } ?? "-"
            print("fold \(k): \(r.imageScores.count) images held out, score " + String(format: "%.4f", r.score)
                  + " (fitted on the other \(images.count - r.imageScores.count): \(inSample) there)")
        }
        let report = MetricReport(images: byImage, groupings: WeightFitter.cellTypeGrouping(images.map { ($0.image, $0.cellType) }))
        print(Self.byType(report, heading: "cross-validated (\(folds) folds): each image scored by the fit of the other folds"))
        return results.map(\.fitted)
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

/// A whole evaluation that cannot proceed; one line, no usage text.
struct EvalError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
