import Coordinator
import Foundation
import Imaging
import JobStore
import PlateFixtures
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

    /// A resubmission reads only files whose identity (device, inode, size, modification time)
    /// changed: bytes rewritten in place with the old time restored are not read; a file
    /// changed since is read, and named.
    @Test func aResubmissionReadsOnlyFilesThatChanged() throws {
        let plate = try makePlate(["PLATE7_B02_s1.png": "0f08d640930b.png", "PLATE7_B03_s1.png": "08f52aa2add3.png"])
        let store = try freshStore()
        #expect(try submitter.submit(folder: plate.path, to: store).newJobs == 8)
        let stored = try store.images(plate: "PLATE7")
        #expect(stored.count == 2 && stored.allSatisfy { $0.fileIdentity != nil })
        let field = plate.appendingPathComponent("PLATE7_B02_s1.png")
        var info = stat()
        #expect(stat(field.path, &info) == 0)
        // Same size, same inode, same time to the nanosecond, other bytes: a read would find the
        // file damaged.
        let size = try Data(contentsOf: field).count
        let handle = try FileHandle(forWritingTo: field)
        try handle.write(contentsOf: Data(repeating: 0, count: size))
        try handle.close()
        var times = [info.st_atim, info.st_mtim]
        #expect(utimensat(AT_FDCWD, field.path, &times, 0) == 0)
        let resumed = try submitter.submit(folder: plate.path, to: store)
        #expect(resumed.newImages == 0 && resumed.changedFiles.isEmpty, "an unchanged identity is not read again")

        times[1].tv_sec += 60
        #expect(utimensat(AT_FDCWD, field.path, &times, 0) == 0)
        let changed = try submitter.submit(folder: plate.path, to: store)
        #expect(changed.changedFiles == ["PLATE7_B02_s1.png"])
        #expect(changed.changeNote?.contains("the stored cells are of the earlier file") == true)
        #expect(try store.unreadableImages(plate: nil).isEmpty, "the segmented image stays as it was")
    }

    @Test func aFieldLargerThanATileIsAnnouncedWithItsTilesAndJobs() throws {
        let plate = try makePlate(["PLATE7_B02_s1.png": "0f08d640930b.png"])
        let small = PlateSubmitter(layout: TileLayout(size: 256, overlap: 32), models: ["yolox", "maskrcnn"])
        let s = try small.submit(folder: plate.path, to: try freshStore())
        #expect(s.tiledFields == 1 && s.tilesOfTiledFields == 9)
        #expect(s.tilingNote == "1 field is larger than a tile: cut into 9 tiles, 18 network jobs and 1 merges")
        #expect(try submitter.submit(folder: plate.path, to: try freshStore()).tilingNote == nil)
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
        #expect(errors.contains("rows 3 and 4 both list b.png, so it was not submitted"))
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

/// Manifests as Excel and Python's csv module write them, and mistakes that can be mended.
@Suite struct ManifestTests {
    @Test func excelAndQuoteAllManifestsAreRead() throws {
        let plate = try makePlate(["a, b.png": "0f08d640930b.png", "c.png": "08f52aa2add3.png"])
        let manifest = plate.appendingPathComponent("manifest.csv")
        // Python's csv.QUOTE_ALL with CRLF, after Excel's byte-order mark; a file name with a comma.
        try "\u{FEFF}\"file\",\"well\",\"field\"\r\n\"a, b.png\",\"B02\",\"1\"\r\n\"c.png\",\"c3\",\"2\"\r\n"
            .write(to: manifest, atomically: true, encoding: .utf8)
        let read = try Manifest(path: manifest.path)
        #expect(read.rowErrors.isEmpty, "\(read.rowErrors)")
        #expect(read.identities["a, b.png"] == ImageIdentity(well: "B02", field: 1))
        #expect(read.identities["c.png"] == ImageIdentity(well: "C03", field: 2))
        #expect(read.rows == ["a, b.png": 2, "c.png": 3])
    }

    @Test func aFileListedTwiceSaysItWasNotSubmitted() throws {
        let plate = try makePlate(["a.png": "0f08d640930b.png"])
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well\na.png,B02\na.png,B03\n".write(to: manifest, atomically: true, encoding: .utf8)
        let read = try Manifest(path: manifest.path)
        #expect(read.rowErrors["a.png"] == "\(manifest.path) rows 2 and 3 both list a.png, so it was not submitted; keep one row per file and submit again")
    }
}

extension ManifestTests {
    /// A manifest mended and submitted again: the errors of its rows go, and the plate can complete.
    @Test func aMendedManifestClearsTheErrorsOfItsRows() throws {
        let plate = try makePlate(["a.png": "0f08d640930b.png", "b.png": "08f52aa2add3.png"])
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well\na.png,B02\nb.png,Z99\nmissing.png,C03\n".write(to: manifest, atomically: true, encoding: .utf8)
        let store = try freshStore()
        let submitter = PlateSubmitter(layout: TileLayout(size: 768, overlap: 96), models: ["maskrcnn"])
        _ = try submitter.submit(folder: plate.path, manifest: try Manifest(path: manifest.path), to: store)
        #expect(try store.unreadableImages(plate: nil).count == 2)
        try "file,well\na.png,B02\nb.png,B03\n".write(to: manifest, atomically: true, encoding: .utf8)
        let mended = try submitter.submit(folder: plate.path, manifest: try Manifest(path: manifest.path), to: store)
        #expect(mended.newImages == 1 && mended.newJobs == 2)
        #expect(try store.unreadableImages(plate: nil).isEmpty)
        #expect(try store.progress(plate: "PLATE7").first?.unreadableImages == 0)
    }

    @Test func twoFilesTheManifestPutsInOnePlaceNameBothRows() throws {
        let plate = try makePlate(["a.png": "0f08d640930b.png", "b.png": "08f52aa2add3.png"])
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well,field\na.png,B02,1\nb.png,B02,1\n".write(to: manifest, atomically: true, encoding: .utf8)
        let store = try freshStore()
        _ = try PlateSubmitter(layout: TileLayout(size: 768, overlap: 96), models: ["maskrcnn"])
            .submit(folder: plate.path, manifest: try Manifest(path: manifest.path), to: store)
        let errors = try store.unreadableImages(plate: nil).map(\.error)
        #expect(errors == ["\(manifest.path) rows 2 and 3 place a.png and b.png at one well B02, field 1, time point - and channel -; correct one of the rows and submit again"])
    }
}
