import Ensemble
import Foundation
import Imaging
import JobStore

/// What an evaluation scores: the stored ensemble cells, or one network's own instances
/// re-merged from its stored tile outputs (the paper's "each model alone" rows).
public enum ScoredOutput: String, Sendable, CaseIterable {
    case ensemble, yolox, maskrcnn, upernet
}

/// The stored results of a plate scored against annotations with the Sartorius metric.
public struct Evaluation {
    let db: any JobStore
    let truth: [String: TruthImage]
    let truthPath: String
    let merger: Merger
    let plate: String?
    /// The plate's images that have annotations, in the store's order.
    public let images: [StoredImage]
    /// The truth id of each of `images`, by image id.
    let truthIDs: [Int64: String]

    /// Fails in one line when no image of `plate` has annotations in `truth`, or when an id
    /// names two images.
    public init(_ db: any JobStore, truth: GroundTruth, truthPath: String, plate: String?, modelsDir: String) throws {
        self.db = db
        self.truth = Dictionary(truth.images.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.truthPath = truthPath
        self.plate = plate
        merger = Merger(config: try ModelsFolder(modelsDir).ensembleConfig())
        let (images, ids) = try Self.annotated(try db.images(plate: plate), plates: try db.plates(), truth: truth, truthPath: truthPath)
        self.images = images
        truthIDs = ids
        guard !images.isEmpty else {
            if !truth.errors.isEmpty {
                throw EvaluationError("\(truthPath): nothing left to score: \(truth.errors.count) row(s) above are unusable and no other annotated image is in \(db.location); fix those rows")
            }
            throw EvaluationError("no image of \(plate ?? "any plate") in \(db.location) has annotations in \(truthPath); ids are the images' paths in the plate folder without extension, or their file names without extension")
        }
    }

    /// The stored images the truth's ids name (a path in the plate folder, with or without
    /// extension, or a bare file name that only one image has), in the store's order.
    static func annotated(_ stored: [StoredImage], plates: [PlateInfo], truth: GroundTruth,
                          truthPath: String) throws -> ([StoredImage], [Int64: String]) {
        let names = ImageNames(stored, plates: plates)
        var ids: [Int64: String] = [:]
        for t in truth.images {
            do {
                // A COCO file of another tool may name its images under a folder of its own
                // (`train/<id>.png`): then the file name names them.
                let named = try names.image(named: t.id) ?? (t.id.contains("/") ? try names.image(named: PathName.file(t.id)) : nil)
                guard let image = named else { continue }
                ids[image.id] = t.id
            } catch let e as ImageNameError {
                throw EvaluationError("\(truthPath): image id \(e.description)")
            }
        }
        return (stored.filter { ids[$0.id] != nil }, ids)
    }

    /// The networks the plate ran (read from the first image's tile jobs), then the ensemble.
    public func everyOutput() throws -> [ScoredOutput] {
        let ran = Set(try db.provenance(imageID: images[0].id).compactMap { try? InferJob(jobArgs: $0.args).model })
        return [ScoredOutput.yolox, .maskrcnn, .upernet].filter { ran.contains($0.rawValue) } + [.ensemble]
    }

    /// One output scored on every annotated image that has it; the images left out, and why.
    public func score(_ scored: ScoredOutput) throws -> EvaluationResult {
        if scored != .ensemble { try requireTileOutputs(purpose: "`eval --model \(scored.rawValue)`") }
        var result = EvaluationResult(scored: scored)
        var types: [String: String] = [:]
        var wells: [String: String] = [:]
        for image in images {
            let id = truthIDs[image.id]!
            let t = truth[id]!
            // A transposed or rescaled truth would score as if it fitted.
            guard t.width == image.width && t.height == image.height else {
                result.leftOut.append("\(image.path): \(image.width)x\(image.height) pixels, but its annotations in \(truthPath) are \(t.width)x\(t.height); left out (give the annotations of this image)")
                continue
            }
            do {
                guard let predicted = try predictions(scored, image) else {
                    result.leftOut.append("\(image.path): not merged yet (merge job \(image.mergeState?.rawValue ?? "missing")); left out")
                    continue
                }
                result.imageScores[id] = SartoriusMetric.score(predicted: predicted, truth: t.masks)
                types[id] = t.cellType
                wells[id] = image.well
            } catch {
                result.leftOut.append("\(image.path): \(error); left out")
            }
        }
        result.cellTypes = types
        result.report = MetricReport(images: result.imageScores, groupings: ["cell type": types, "well": wells])
        return result
    }

    /// Single networks are scored by merging their stored tile outputs again: a plate whose
    /// outputs were removed after its merges is one line, not a table of images left out.
    private func requireTileOutputs(purpose: String) throws {
        for name in Set(images.map(\.plate)).sorted() {
            let merged = images.filter { $0.plate == name && $0.mergeState == .succeeded }
            guard let first = merged.first, let job = first.mergeJobID else { continue }
            if try db.dependencyArtifacts(of: job).allSatisfy(\.bytes.isEmpty) {
                throw EvaluationError(TileOutputs.neededMessage(plate: name, purpose: purpose))
            }
        }
    }

    private func predictions(_ scored: ScoredOutput, _ image: StoredImage) throws -> [Mask]? {
        guard let mergeJob = image.mergeJobID else { return nil }
        if scored == .ensemble {
            guard image.mergeState == .succeeded else { return nil }
            return try (db.cells(ofImages: [image.id], cellType: nil)[image.id] ?? []).map {
                try COCORLE(compressed: $0.rle, width: image.width, height: image.height).mask()
            }
        }
        // The merge job's own arguments: a field resized to the networks' scale is merged at that
        // scale and its cells mapped back.
        let args = try db.provenance(imageID: image.id).first { $0.job == mergeJob }.map { try MergeJob(jobArgs: $0.args) }
            ?? MergeJob(image: image.path, width: image.width, height: image.height)
        return try MergeHandler(store: db, merger: merger).fieldMasks(of: mergeJob, args, models: [EnsembleModel(artifactModel: scored.rawValue)!])
    }
}

/// One output's scores.
public struct EvaluationResult: Sendable {
    public var scored: ScoredOutput
    /// By image id (file name without extension).
    public var imageScores: [String: SartoriusMetric.ImageScore] = [:]
    public var cellTypes: [String: String] = [:]
    /// Grouped by cell type and by well.
    public var report = MetricReport(images: [:])
    /// One line per annotated image that could not be scored, naming it and why.
    public var leftOut: [String] = []
}

/// A whole evaluation or calibration that cannot proceed; one line, no usage text.
public struct EvaluationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Evaluation {
    /// A table row per output scored (header first: images, score, score per type, cells found
    /// against annotated, count bias), telling `say` what each left out, each image's score when
    /// `perImage`, and the score per well when one output is scored. Fails when nothing could be
    /// scored, and says when the stored cells were made by other model files than `modelsDir`'s.
    public func table(_ outputs: [ScoredOutput], perImage: Bool, modelsDir: String, say: (String) -> Void) throws -> [[String]] {
        var table = [["scored", "images", "score"] + EnsembleConfig.cellTypes + ["cells/annotated", "count bias"]]
        var scoredAny = false
        for scored in outputs {
            let result = try score(scored)
            result.leftOut.forEach(say)
            scoredAny = scoredAny || !result.imageScores.isEmpty
            let report = result.report
            let byType = EnsembleConfig.cellTypes.map { report.groups["cell type"]?[$0].map { String(format: "%.3f", $0.score) } ?? "-" }
            table.append([scored.rawValue, "\(result.imageScores.count)", report.score.map { String(format: "%.3f", $0) } ?? "-"] + byType
                         + ["\(report.predictedCells)/\(report.annotatedCells)", String(format: "%+.1f %%", report.countBias * 100)])
            if perImage {
                for (id, s) in result.imageScores.sorted(by: { $0.key < $1.key }) {
                    say("  \(scored.rawValue) \(id) [\(result.cellTypes[id] ?? "?")] \(String(format: "%.3f", s.score)), \(s.predictedCells) cells of \(s.annotatedCells) annotated")
                }
            }
            if outputs.count == 1, let wellGroups = report.groups["well"], !wellGroups.isEmpty {
                say("Per well:")
                for (well, g) in wellGroups.sorted(by: { $0.key < $1.key }) {
                    say("  \(well): \(String(format: "%.3f", g.score)) over \(g.images) image(s), \(g.predictedCells) cells of \(g.annotatedCells) annotated")
                }
            }
        }
        guard scoredAny else {
            throw EvaluationError("nothing scored: each of the \(images.count) annotated image(s) was left out, as said above")
        }
        return table
    }

    /// Right after `calibrate` the stored cells are still the old fit's merges, while the
    /// single-network rows are re-merged with the new ensemble.json: which is which.
    public func staleNotes(modelsDir: String) throws -> [String] {
        let plates = Set(images.map(\.plate)).sorted()
        return try StaleResults.find(in: db, plates: plates, modelsDir: modelsDir).sorted(by: { $0.key < $1.key }).map { p, stale in
            "note: \(stale.describe(plate: p)) than those in \(modelsDir): the ensemble row scores those stored cells; `plateseg run --redo-stale` makes them again"
        }
    }
}
