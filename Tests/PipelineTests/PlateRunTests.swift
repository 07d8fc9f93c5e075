import Foundation
import JobStore
@testable import Pipeline
import Testing

/// What `plateseg run` says when its workers are gone, and the pieces the command line prints.
@Suite struct PlateRunTests {
    let run = PlateRun(plate: "P", modelsDir: "/nonexistent/models")

    @Test func aPlateWhoseMergeWasNotRunIsIncompleteAndSaysWhy() throws {
        let plate = try MergeReadyPlate()
        let final = try plate.store.progress(plate: "P").first
        let left = try run.outcome(plate.store, final: final, stopped: false, deaths: 0)
        #expect(!left.complete && left.problems.isEmpty)
        #expect(left.verdict.hasPrefix("plate P: incomplete: 1 jobs not run (no worker left);"), "\(left.verdict)")
        let stopped = try run.outcome(plate.store, final: final, stopped: true, deaths: 2)
        #expect(stopped.verdict.contains("stopped with 1 jobs not run")
                && stopped.verdict.contains("2 worker process(es) died"), "\(stopped.verdict)")
    }

    @Test func aMergedPlateIsCompleteWithItsCellsPerWell() throws {
        let plate = try MergeReadyPlate()
        #expect(try run.wellTable(plate.store) == nil, "no cells before the merge")
        try plate.runMerge(try ModelsFolder("/nonexistent/models").mergeHandler(store: plate.store))
        let done = try run.outcome(plate.store, final: try plate.store.progress(plate: "P").first, stopped: false, deaths: 0)
        #expect(done.complete && done.verdict == "plate P: complete, 1 images segmented")
        #expect(try run.wellTable(plate.store) == [["well", "astro", "total"], ["A01", "2", "2"]])
    }

    @Test func aFailedJobIsAProblemNamedByItsFile() throws {
        let plate = try MergeReadyPlate()
        let merge = try #require(try plate.store.claim(owner: "test", leaseSeconds: 60))
        try plate.store.fail(merge.lease, error: "the disk said no", retryable: false)
        let final = try plate.store.progress(plate: "P").first
        let left = try run.outcome(plate.store, final: final, stopped: false, deaths: 0)
        #expect(left.problems == ["job \(merge.id) merge cells_A01_s1.png: the disk said no"])
        #expect(left.verdict.contains("1 jobs failed") && !left.complete)
    }

    @Test func theProgressLineGivesRateAndTimeLeft() throws {
        let bar = ProgressBar(plate: "P")
        var p = try #require(try MergeReadyPlate().store.progress(plate: "P").first)
        (p.images, p.imagesMerged, p.queued, p.blocked, p.running, p.succeeded, p.failed) = (4, 0, 20, 4, 0, 0, 0)
        #expect(bar.render(p, elapsed: 0).contains("ETA --:--"))
        (p.queued, p.succeeded, p.imagesMerged) = (10, 10, 2)
        let line = bar.render(p, elapsed: 10)
        #expect(line.contains("images 2/4") && line.contains("jobs 10/20") && line.contains("1.0 jobs/s") && line.contains("ETA 0:10"), "\(line)")
        #expect(line.contains("[###############...............]"))
        #expect(ProgressBar.clock(3725) == "1:02:05")
    }

    @Test func tablesAlignNumbersRight() {
        #expect(TextTable.lines([["well", "cells"], ["B03", "7"], ["B04", "12"]])
                == ["well  cells", "----  -----", "B03       7", "B04      12"])
    }

    @Test func jsonRowsCarryNumbersAsNumbersAndEmptyAsNull() {
        #expect(RowOutput.jsonValue("12") as? Int == 12)
        #expect(RowOutput.jsonValue("0.5") as? Double == 0.5)
        #expect(RowOutput.jsonValue("") is NSNull)
        #expect(RowOutput.jsonValue("B03") as? String == "B03")
    }

    @Test func reportOverlaysAreReadAsWellNames() throws {
        #expect(try PlateReport.FullOverlays(parsing: nil) == .automatic)
        #expect(try PlateReport.FullOverlays(parsing: "ALL") == .all)
        #expect(try PlateReport.FullOverlays(parsing: "b3,C04") == .wells(["B03", "C04"]))
        #expect(throws: FilterError.self) { try PlateReport.FullOverlays(parsing: "B03,x") }
    }

    /// As Excel writes a CSV: a byte-order mark, quoted names, CRLF; and a split column first.
    @Test func aTrainingSplitIsReadFromAnyCSV() throws {
        let folder = temporaryFolder("plateseg-split")
        for name in ["a.png", "b.png", "c,d.png", "e.tif", "notes.txt"] { try Data().write(to: folder.appendingPathComponent(name)) }
        let list = folder.appendingPathComponent("images.csv")
        try Data("\u{FEFF}\"split\",\"id\"\r\ntrain,a\r\nval,b\r\ntrain,\"c,d\"\r\ntrain,e\r\ntrain,notes\r\n".utf8).write(to: list)
        let paths = try TrainingSplit.paths(folder: folder.path, list: list.path, split: "train")
        #expect(paths.map { FileManager.default.displayName(atPath: $0) } == ["a.png", "c,d.png", "e.tif"])
        #expect(throws: TrainingSplitError.self) { try TrainingSplit.paths(folder: folder.path, list: list.path, split: "test") }
    }
}
