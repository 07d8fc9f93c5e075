import Ensemble
import Foundation
import Imaging
import JobStore
@testable import Pipeline
import Testing

@Suite struct EvaluationTests {
    static let id = "cells_A01_s1"

    static func merged() throws -> MergeReadyPlate {
        let plate = try MergeReadyPlate()
        try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
        return plate
    }

    static func truth(width: Int = MergeReadyPlate.width, height: Int = MergeReadyPlate.height) throws -> (GroundTruth, String) {
        let path = try truthCSV([(Self.id, width, height, "astro", MergeReadyPlate.cells)])
        return (try GroundTruth.read(path: path), path)
    }

    @Test func storedCellsThatAreTheAnnotationsScoreOne() throws {
        let plate = try Self.merged()
        let (truth, path) = try Self.truth()
        let evaluation = try Evaluation(plate.store, truth: truth, truthPath: path, plate: "P", modelsDir: "/nonexistent")
        let result = try evaluation.score(.ensemble)
        #expect(result.leftOut.isEmpty)
        #expect(result.imageScores[Self.id]?.score == 1)
        #expect(result.cellTypes[Self.id] == "astro")
        #expect(result.report.groups["well"]?["A01"]?.annotatedCells == 2)
    }

    @Test func everyNetworkThePlateRanIsScoredAloneThenTheEnsemble() throws {
        let plate = try Self.merged()
        let (truth, path) = try Self.truth()
        let evaluation = try Evaluation(plate.store, truth: truth, truthPath: path, plate: "P", modelsDir: "/nonexistent")
        #expect(try evaluation.everyOutput() == [.yolox, .maskrcnn, .upernet, .ensemble])
        let alone = try evaluation.score(.maskrcnn)
        #expect(alone.imageScores.count == 1 && alone.leftOut.isEmpty)
        #expect(alone.report.predictedCells == 2)
    }

    @Test func annotationsOfAnotherSizeAreLeftOutByName() throws {
        let plate = try Self.merged()
        let (truth, path) = try Self.truth(width: MergeReadyPlate.height, height: MergeReadyPlate.width)
        let result = try Evaluation(plate.store, truth: truth, truthPath: path, plate: "P", modelsDir: "/nonexistent").score(.ensemble)
        #expect(result.imageScores.isEmpty)
        #expect(result.leftOut == ["\(MergeReadyPlate.image): 100x80 pixels, but its annotations in \(path) are 80x100; left out (give the annotations of this image)"])
    }

    @Test func anImageNotMergedYetIsLeftOutSayingSo() throws {
        let plate = try MergeReadyPlate()
        let (truth, path) = try Self.truth()
        let result = try Evaluation(plate.store, truth: truth, truthPath: path, plate: "P", modelsDir: "/nonexistent").score(.ensemble)
        #expect(result.leftOut.count == 1 && result.leftOut[0].contains("not merged yet (merge job queued)"))
    }

    @Test func noAnnotatedImageIsOneLineSayingHowIdsMatch() throws {
        let plate = try Self.merged()
        let path = try truthCSV([("another_image", 100, 80, "astro", MergeReadyPlate.cells)])
        let error = try #require(throws: EvaluationError.self) {
            try Evaluation(plate.store, truth: try GroundTruth.read(path: path), truthPath: path, plate: "P", modelsDir: "/nonexistent")
        }
        #expect(error.description.contains("ids are the images' paths in the plate folder without extension, or their file names without extension"))
        #expect(imageID(of: MergeReadyPlate.image) == Self.id)
    }
}

@Suite struct CalibrationTests {
    static func image(_ name: String, _ type: String) -> CalibrationImage {
        CalibrationImage(image: name, width: 1, height: 1, artifacts: [], truth: [], cellType: type)
    }

    @Test func everyFoldHoldsEachCellTypesShare() {
        let images = ["a1", "b1", "a2", "a3", "b2", "a4", "b3"].map { Self.image($0, String($0.prefix(1))) }
        let folds = Calibration.folds(of: images, count: 2)
        #expect(folds == [0, 0, 1, 0, 1, 1, 0])
        for k in 0..<2 {
            let types = zip(images, folds).filter { $0.1 == k }.map { $0.0.cellType! }
            #expect(types.filter { $0 == "a" }.count == 2)
            #expect((1...2).contains(types.filter { $0 == "b" }.count))
        }
    }

    @Test func theImagesToFitOnAreTheAnnotatedOnesWithStoredTileOutputs() throws {
        let plate = try EvaluationTests.merged()
        let (truth, _) = try EvaluationTests.truth()
        let images = try Calibration.images(from: plate.store, truth: truth, plate: "P")
        #expect(images.count == 1 && images[0].artifacts.count == 3 && images[0].cellType == "astro" && images[0].truth.count == 2)
        _ = try plate.store.pruneArtifacts(plate: "P")
        let error = try #require(throws: EvaluationError.self) { try Calibration.images(from: plate.store, truth: truth, plate: "P") }
        #expect(error.description.hasPrefix("plate P: its tile outputs were removed after its merges (the default); `plateseg calibrate` needs them"))
        #expect(error.description.contains("plateseg retry --plate P --keep-tile-outputs"))
    }

    @Test func aPlateWhoseTileOutputsWereRemovedIsOneLineForEachNetworkAlone() throws {
        let plate = try MergeReadyPlate(keepTileOutputs: false)
        try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
        let (truth, path) = try EvaluationTests.truth()
        let evaluation = try Evaluation(plate.store, truth: truth, truthPath: path, plate: "P", modelsDir: "models")
        #expect(try evaluation.score(.ensemble).imageScores.count == 1, "the stored cells need no tile outputs")
        let error = try #require(throws: EvaluationError.self) { try evaluation.score(.maskrcnn) }
        #expect(error.description.contains("`eval --model maskrcnn` needs them"))
    }

    @Test func crossValidationNeedsAnImagePerFold() throws {
        let images = [Self.image("a1", "a")]
        #expect(throws: EvaluationError.self) {
            try Calibration.crossValidate(WeightFitter(), images, folds: 2, split: "val", models: [.maskrcnn])
        }
    }
}
