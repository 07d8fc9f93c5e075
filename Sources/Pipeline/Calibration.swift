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
