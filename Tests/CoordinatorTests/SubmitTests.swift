import Coordinator
import Foundation
import Imaging
import JobStore
import PlatesegTestSupport
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let demoPlate = repositoryRoot.appendingPathComponent("demo/plate")

/// A scratch plate folder holding copies of some demo images under chosen names.
func makePlate(_ files: [String: String]) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-plate-\(UUID().uuidString)/PLATE7")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for (name, source) in files {
        try FileManager.default.copyItem(at: demoPlate.appendingPathComponent(source), to: dir.appendingPathComponent(name))
    }
    return dir
}

func freshStore() throws -> any JobStore {
    try openJobStore(temporaryFolder("plateseg-db").appendingPathComponent("jobs.sqlite").path)
}

@Suite struct SubmitTests {
    let submitter = PlateSubmitter(layout: TileLayout(size: 768, overlap: 96), models: ["yolox", "maskrcnn", "upernet"])

    @Test func demoPlateWithManifestBecomesOneJobGraphPerImage() throws {
        let store = try freshStore()
        let manifest = try Manifest(path: demoPlate.appendingPathComponent("manifest.csv").path)
        let summary = try submitter.submit(folder: demoPlate.path, plate: "demo", manifest: manifest, to: store)
        #expect(summary == SubmitSummary(newImages: 12, unreadableImages: 0, newJobs: 12 * 4))
        let jobs = try store.jobs(plate: "demo")
        #expect(jobs.filter { $0.kind == "merge" }.allSatisfy { $0.waitingOn == 3 })
        let again = try submitter.submit(folder: demoPlate.path, plate: "demo", manifest: manifest, to: store)
        #expect(again == SubmitSummary(newImages: 0, unreadableImages: 0, newJobs: 0))
    }

    @Test func largeImagesAreCutIntoOverlappingTiles() throws {
        let small = PlateSubmitter(layout: TileLayout(size: 400, overlap: 64), models: ["yolox"])
        let images = [NewImage(path: "/p/a.png", well: "B02", field: 1, width: 704, height: 520, contentHash: "x")]
        let s = small.submission(plate: "p", folder: "/p", images: images)
        let tiles = try s.jobs.filter { $0.kind == InferJob.kind }.map { try InferJob(jobArgs: $0.args).tile }
        #expect(tiles == TileLayout(size: 400, overlap: 64).tiles(width: 704, height: 520))
        #expect(tiles.count == 4 && s.jobs.last!.dependsOn.count == 4)
    }

    @Test func wellAndFieldComeFromFileNames() throws {
        let plate = try makePlate(["PLATE7_B03_s1_w1.png": "0f08d640930b.png", "PLATE7_B03_s2_w1.png": "08f52aa2add3.png"])
        let images = try PlateScanner().scan(folder: plate.path)
        #expect(images.map(\.well) == ["B03", "B03"] && images.map(\.field) == [1, 2])
        #expect(images.allSatisfy { $0.width == 704 && $0.height == 520 && $0.error == nil && $0.contentHash.hasPrefix("fnv1a64:") })
        #expect(images[0].contentHash != images[1].contentHash)
    }

    @Test func aPlateFolderGivenAsASymbolicLinkIsScannedLikeTheFolder() throws {
        let plate = try makePlate(["PLATE7_B03_s1_w1.png": "0f08d640930b.png", "PLATE7_B03_s2_w1.png": "08f52aa2add3.png"])
        let link = plate.deletingLastPathComponent().appendingPathComponent("PLATE7-link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: plate)
        let images = try PlateScanner().scan(folder: link.path)
        #expect(images.map { ($0.path as NSString).lastPathComponent } == ["PLATE7_B03_s1_w1.png", "PLATE7_B03_s2_w1.png"])
        #expect(images.allSatisfy { $0.path.hasPrefix(link.path + "/") && $0.error == nil })
    }

    @Test func corruptImageIsRecordedAndTheRestOfThePlateIsSubmitted() throws {
        let plate = try makePlate(["PLATE7_B02_s1.png": "0f08d640930b.png", "PLATE7_B02_s2.png": "08f52aa2add3.png"])
        let bad = plate.appendingPathComponent("PLATE7_B02_s2.png")
        let bytes = try Data(contentsOf: bad)
        try bytes.prefix(5000).write(to: bad)
        let store = try freshStore()
        let s = try submitter.submit(folder: plate.path, to: store)
        #expect(s == SubmitSummary(newImages: 2, unreadableImages: 1, newJobs: 4))
        let unreadable = try store.unreadableImages(plate: "PLATE7")
        #expect(unreadable.count == 1 && unreadable[0].error.contains("PLATE7_B02_s2.png"))
    }

    @Test func aNewImageInTheFolderIsPickedUp() throws {
        let plate = try makePlate(["PLATE7_B02_s1.png": "0f08d640930b.png"])
        let store = try freshStore()
        #expect(try submitter.submit(folder: plate.path, to: store).newJobs == 4)
        try FileManager.default.copyItem(at: demoPlate.appendingPathComponent("08f52aa2add3.png"),
                                         to: plate.appendingPathComponent("PLATE7_B02_s2.png"))
        #expect(try submitter.submit(folder: plate.path, to: store) == SubmitSummary(newImages: 1, unreadableImages: 0, newJobs: 4))
    }

    @Test func badManifestRowsNameTheRowAndOtherImagesProceed() throws {
        let plate = try makePlate(["a.png": "0f08d640930b.png", "b.png": "08f52aa2add3.png", "c.png": "1974fbb27dcf.png"])
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well,field\na.png,B02,1\nb.png,ZZ,1\nc.png,C03\nmissing.png,D04,2\n".write(to: manifest, atomically: true, encoding: .utf8)
        let store = try freshStore()
        let s = try submitter.submit(folder: plate.path, manifest: try Manifest(path: manifest.path), to: store)
        #expect(s.newImages == 4 && s.unreadableImages == 3 && s.newJobs == 4)
        let errors = try store.unreadableImages(plate: nil).map(\.error).joined(separator: "\n")
        #expect(errors.contains("row 3: well \"ZZ\""))
        #expect(errors.contains("row 4: has 2 columns"))
        #expect(errors.contains("missing.png: listed in the manifest but not in the plate folder"))
    }

    /// Rows that cannot be trusted are refused by row, never guessed: a file listed twice, a
    /// row naming a file outside the plate folder, and an image no row places.
    @Test func ambiguousAndEscapingManifestRowsAreRefusedByRow() throws {
        let plate = try makePlate(["a.png": "0f08d640930b.png", "b.png": "08f52aa2add3.png", "c.png": "1974fbb27dcf.png",
                                   "P_B05_s1.png": "17754cb5b287.png"])
        let outside = plate.deletingLastPathComponent().appendingPathComponent("secret.png")
        try FileManager.default.copyItem(at: demoPlate.appendingPathComponent("053d61766edb.png"), to: outside)
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well,field\na.png,B02,1\nb.png,B03,1\nb.png,B04,1\n../secret.png,C02,1\n\(outside.path),C03,1\n"
            .write(to: manifest, atomically: true, encoding: .utf8)
        let store = try freshStore()
        let s = try submitter.submit(folder: plate.path, manifest: try Manifest(path: manifest.path), to: store)
        // a.png and P_B05_s1.png (its name places it) are segmented; the rest are reported.
        #expect(s.newJobs == 8)
        let errors = try store.unreadableImages(plate: nil).map(\.error).joined(separator: "\n")
        #expect(errors.contains("row 4: b.png is listed again (first on row 3)"))
        #expect(errors.contains("row 5: ../secret.png is outside the plate folder"))
        #expect(errors.contains("row 6: \(outside.path) is outside the plate folder"))
        #expect(errors.contains("c.png: not in the manifest, and its name gives no well"))
        #expect(try store.images(plate: nil).filter { $0.error == nil }.map { ($0.path as NSString).lastPathComponent }.sorted() == ["P_B05_s1.png", "a.png"])
    }

    /// Spaces and letters beyond ASCII in names are names like any other.
    @Test func namesWithSpacesAndNonASCIILettersArePlaced() throws {
        let plate = try makePlate(["P1_B02_s1 copy.png": "0f08d640930b.png", "P1_C02_s1_é.png": "08f52aa2add3.png",
                                   "Plätte 1_D02_s1.png": "1974fbb27dcf.png"])
        let images = try PlateScanner().scan(folder: plate.path)
        #expect(images.map(\.well).sorted { ($0 ?? "") < ($1 ?? "") } == ["B02", "C02", "D02"] && images.allSatisfy { $0.error == nil })
    }

    /// A symbolic link loop among the images is one unreadable image saying so; the rest proceed.
    @Test func aSymbolicLinkLoopIsOneUnreadableImage() throws {
        let plate = try makePlate(["P1_B02_s1.png": "0f08d640930b.png"])
        try FileManager.default.createSymbolicLink(atPath: plate.appendingPathComponent("P1_C02_s1.png").path, withDestinationPath: "P1_D02_s1.png")
        try FileManager.default.createSymbolicLink(atPath: plate.appendingPathComponent("P1_D02_s1.png").path, withDestinationPath: "P1_C02_s1.png")
        try FileManager.default.createSymbolicLink(atPath: plate.appendingPathComponent("sub").path, withDestinationPath: "..")
        let images = try PlateScanner().scan(folder: plate.path)
        #expect(images.filter { $0.error == nil }.map(\.well) == ["B02"])
        #expect(images.filter { $0.error != nil }.allSatisfy { $0.error!.contains("Too many levels of symbolic links") })
    }

    @Test func manifestWithoutTheRequiredColumnsIsRefused() throws {
        let plate = try makePlate([:])
        let manifest = plate.appendingPathComponent("m.csv")
        try "name,position\n".write(to: manifest, atomically: true, encoding: .utf8)
        #expect(throws: CoordinatorError.self) { try Manifest(path: manifest.path) }
        #expect(throws: CoordinatorError.self) { try Manifest(path: "/no/such/manifest.csv") }
    }
}
