import Ensemble
import Foundation
import Imaging
import JobStore
@testable import Pipeline
import Testing

/// Results are stale when the file that made them differs, by content, from the one in the
/// models folder now.
@Suite struct StaleResultsTests {
    /// A models folder with the three networks' files and int8 ranges, and the plate made with
    /// them (Mask R-CNN in int8, the others in bf16), merged.
    static func madeWithTheFolder() throws -> (MergeReadyPlate, URL) {
        let folder = temporaryFolder("plateseg-models")
        var hashes: [String: String] = [:]
        for model in ["yolox", "maskrcnn", "upernet"] {
            let bytes = Data("\(model) weights v1".utf8)
            try bytes.write(to: folder.appendingPathComponent("\(model).safetensors"))
            hashes[model] = ContentHash.of(bytes)
            try Data("\(model) ranges v1".utf8).write(to: folder.appendingPathComponent("\(model).int8.json"))
        }
        let plate = try MergeReadyPlate(modelHashes: hashes, calibrations: ["maskrcnn": ContentHash.of(Data("maskrcnn ranges v1".utf8))])
        let handlers = try ModelsFolder(folder.path).jobHandlers(store: plate.store)
        try plate.runMerge(try #require(handlers[MergeJob.kind]))
        return (plate, folder)
    }

    @Test func nothingIsStaleWhileTheFolderHoldsTheSameFiles() throws {
        let (plate, folder) = try Self.madeWithTheFolder()
        #expect(try StaleResults.find(in: plate.store, plate: "P", modelsDir: folder.path).isEmpty)
        // The same files copied to another folder are not a change.
        let copy = temporaryFolder("plateseg-models-copy").appendingPathComponent("models")
        try FileManager.default.copyItem(at: folder, to: copy)
        #expect(try StaleResults.find(in: plate.store, plate: "P", modelsDir: copy.path).isEmpty)
    }

    @Test func aRetrainedModelMakesItsTilesStaleAndRedoQueuesThemWithTheMerge() throws {
        let (plate, folder) = try Self.madeWithTheFolder()
        try Data("maskrcnn weights v2".utf8).write(to: folder.appendingPathComponent("maskrcnn.safetensors"))
        let stale = try StaleResults.find(in: plate.store, plate: "P", modelsDir: folder.path)
        #expect(stale.tiles.count == 1 && stale.merges.isEmpty)
        #expect(stale.changedFiles == ["maskrcnn.safetensors"])
        #expect(stale.describe(plate: "P") == "1 tile of plate P were made by other versions of maskrcnn.safetensors")
        #expect(try stale.redo(in: plate.store) >= 1)
        let queued = try plate.store.jobs(plate: "P").filter { $0.state != .succeeded }
        #expect(Set(queued.map(\.kind)) == [InferJob.kind, MergeJob.kind], "the tile and the merge that reads it")
    }

    /// New int8 ranges change what a network run in int8 computes, not what it computed in bf16.
    @Test func recalibratedRangesMakeTheTilesRunInInt8Stale() throws {
        let (plate, folder) = try Self.madeWithTheFolder()
        for model in ["yolox", "maskrcnn"] { try Data("\(model) ranges v2".utf8).write(to: folder.appendingPathComponent("\(model).int8.json")) }
        let stale = try StaleResults.find(in: plate.store, plate: "P", modelsDir: folder.path)
        #expect(stale.tiles.count == 1 && stale.merges.isEmpty)
        #expect(stale.changedFiles == ["maskrcnn.int8.json"])
    }

    @Test func aRefittedEnsembleConfigMakesTheMergesStale() throws {
        let (plate, folder) = try Self.madeWithTheFolder()
        var refitted = EnsembleConfig()
        refitted.pixelThreshold += 0.1
        try refitted.jsonData().write(to: folder.appendingPathComponent("ensemble.json"))
        let stale = try StaleResults.find(in: plate.store, plate: "P", modelsDir: folder.path)
        #expect(stale.tiles.isEmpty && stale.merges.count == 1)
        #expect(stale.changedFiles == ["ensemble.json"])
    }

    /// Re-running could only fail; and a report written on another machine has no folder.
    @Test func aMissingFileOrFolderIsNotAChange() throws {
        let (plate, folder) = try Self.madeWithTheFolder()
        try FileManager.default.removeItem(at: folder.appendingPathComponent("upernet.safetensors"))
        #expect(try StaleResults.find(in: plate.store, plate: "P", modelsDir: folder.path).isEmpty)
        #expect(try StaleResults.find(in: plate.store, plates: ["P"], modelsDir: "/nonexistent/models").isEmpty)
    }
}
