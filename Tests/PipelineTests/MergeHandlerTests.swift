import Ensemble
import Foundation
import Imaging
import JobStore
@testable import Pipeline
import Testing
import Worker

@Suite struct MergeHandlerTests {
    @Test func aMergeOfItsTilesOutputsStoresTheFieldsCells() throws {
        let plate = try MergeReadyPlate()
        let result = try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
        let cells = try #require(result.cells)
        #expect(cells.count == 2)
        #expect(cells.allSatisfy { $0.cellType == "astro" })
        let found = try cells.map { try COCORLE(compressed: $0.rle, width: MergeReadyPlate.width, height: MergeReadyPlate.height).mask() }
        for truth in MergeReadyPlate.cells {
            #expect(found.contains { $0.iou(truth) > 0.9 }, "a cell at \(truth.box)")
        }
        #expect(try plate.store.cells(CellQuery(plate: "P")).count == 2)
    }

    @Test func aMergeRecordsTheEnsembleConfigItUsed() throws {
        let plate = try MergeReadyPlate()
        let config = EnsembleConfig()
        let provenance = MergeProvenance(ensembleConfig: ContentHash.of(config.jsonData()), configFile: "defaults")
        let result = try plate.runMerge(MergeHandler(store: plate.store, merger: Merger(config: config), provenance: provenance))
        let recorded = try MergeProvenance(jobArgs: try #require(result.provenance))
        #expect(recorded.ensembleConfig == ContentHash.of(config.jsonData()) && recorded.configFile == "defaults")
    }

    @Test func oneNetworkAloneIsMergedFromItsOwnOutputs() throws {
        let plate = try MergeReadyPlate()
        let handler = MergeHandler(store: plate.store, merger: Merger())
        let args = MergeJob(image: MergeReadyPlate.image, width: MergeReadyPlate.width, height: MergeReadyPlate.height)
        let masks = try handler.fieldMasks(of: try plate.mergeJobID, args, models: [.maskrcnn])
        #expect(masks.count == 2)
    }

    @Test func aMergeWhoseTileOutputsWerePrunedFailsForGoodSayingHowToRedoIt() throws {
        let plate = try MergeReadyPlate()
        try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
        _ = try plate.store.pruneArtifacts(plate: "P")
        let handler = MergeHandler(store: plate.store, merger: Merger())
        let args = MergeJob(image: MergeReadyPlate.image, width: MergeReadyPlate.width, height: MergeReadyPlate.height)
        let id = try plate.mergeJobID
        let error = try #require(throws: PermanentJobError.self) { try handler.fieldMasks(of: id, args) }
        #expect("\(error)".contains("removed after an earlier merge") && "\(error)".contains("plateseg retry --job \(id)"))
    }

    @Test func aMergeRemovesTheTileOutputsItReadUnlessThePlateKeepsThem() throws {
        for keep in [false, true] {
            let plate = try MergeReadyPlate(keepTileOutputs: keep)
            let result = try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
            #expect(result.dropsInputs)
            #expect(try plate.store.artifactCount(plate: "P") == (keep ? 3 : 0))
            #expect(try plate.store.cells(CellQuery(plate: "P")).count == 2)
        }
    }

    @Test func argumentsThatAreNotAMergeJobFailForGood() throws {
        let store = try openJobStore(temporaryFolder().appendingPathComponent("plate.sqlite").path)
        _ = try store.submit(PlateSubmission(plate: "P", root: "/p", images: [], jobs: [
            NewJob(key: "merge", kind: MergeJob.kind, imagePath: nil, args: "{\"tile\":1}")]))
        let job = try #require(try store.claim(owner: "test", leaseSeconds: 60))
        let error = try #require(throws: PermanentJobError.self) { try MergeHandler(store: store, merger: Merger()).run(job) }
        #expect("\(error)".contains("job \(job.id): arguments are not a merge job"))
    }
}
