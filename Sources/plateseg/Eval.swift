import ArgumentParser
import Ensemble
import Foundation
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
        let outputs = try ScoredOutput(rawValue: model.rawValue).map { [$0] } ?? evaluation.everyOutput()
        printTable(try evaluation.table(outputs, perImage: perImage, modelsDir: modelsDir) { print($0) })
        if outputs.contains(.ensemble) { try evaluation.staleNotes(modelsDir: modelsDir).forEach { print($0) } }
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
    var countTolerance = "0.2"

    func validate() throws {
        if folds == 1 || folds < 0 { throw ValidationError("--folds \(folds): give 0 (none) or at least 2") }
        if countTolerance != "off" && !(Double(countTolerance).map { $0 >= 0 } ?? false) {
            throw ValidationError("--count-tolerance \(countTolerance): give a share of at least 0 (0.2: 20 %) or off")
        }
    }

    func run() throws {
        let db = try store.openForReading()
        let images = try Calibration.images(from: db, truth: try GroundTruth.read(path: truth), plate: plate)
        guard !images.isEmpty else { throw EvaluationError("no image of \(plate ?? "any plate") in \(db.location) has both annotations in \(truth) and stored tile outputs; run the plate first (after `plateseg prune` run it again with `plateseg retry`)") }
        try Calibration.fit(images, split: split, folds: folds, countTolerance: Double(countTolerance), out: out) { print($0) }
    }
}
