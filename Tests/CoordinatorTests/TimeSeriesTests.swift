import Coordinator
import Foundation
import Imaging
import JobStore
import PlateFixtures
import Testing

/// Plates as imagers write them: time points in folders or names, several channels per field,
/// previews beside the images, and a plate scanned again later. The pixels are real demo fields.
@Suite struct TimeSeriesTests {
    let submitter = PlateSubmitter(layout: TileLayout(size: 768, overlap: 96), models: ["yolox"])

    /// An ImageXpress time series: `TimePoint_N/PLATE_B02_s1_w1<GUID>.tif`-style names (PNG
    /// pixels), two wavelengths, a thumbnail per image.
    func imageXpressPlate() throws -> URL {
        var files: [String: String] = [:]
        for t in 1...2 {
            for (site, source) in [(1, "0f08d640930b.png"), (2, "08f52aa2add3.png")] {
                for w in 1...2 {
                    files["TimePoint_\(t)/P7_B02_s\(site)_w\(w)5D3F\(t)\(site)\(w)A-1B2C-4D5E-8F90-123456789ABC.png"] = source
                    files["TimePoint_\(t)/P7_B02_s\(site)_w\(w)_thumb9A\(t)\(site)\(w)B2C3-1B2C-4D5E-8F90-123456789ABC.png"] = source
                }
            }
        }
        return try makeNestedPlate(files)
    }

    func makeNestedPlate(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-plate-\(UUID().uuidString)/P7")
        for (name, source) in files {
            let target = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: demoPlate.appendingPathComponent(source), to: target)
        }
        return dir
    }

    @Test func severalChannelsWithNoneChosenAreRefusedNamingThem() throws {
        let plate = try imageXpressPlate()
        let error = try #require(throws: CoordinatorError.self) { try submitter.submit(folder: plate.path, to: try freshStore()) }
        #expect(error.description.contains("several channels (w1, w2)") && error.description.contains("--channel w1"))
        var wrong = submitter
        wrong.channel = "w5"
        let refused = try #require(throws: CoordinatorError.self) { try wrong.submit(folder: plate.path, to: try freshStore()) }
        #expect(refused.description.contains("no images of channel w5"))
    }

    @Test func theChosenChannelIsSegmentedAtEveryTimePointAndTheOthersAreListed() throws {
        let plate = try imageXpressPlate()
        var chosen = submitter
        chosen.channel = "W1"
        let store = try freshStore()
        let s = try chosen.submit(folder: plate.path, to: store)
        #expect(s.newImages == 8 && s.unreadableImages == 0 && s.newJobs == 4 * 2, "4 fields of w1, one tile and one merge each")
        let images = try store.images(plate: "P7")
        #expect(!images.contains { $0.path.contains("_thumb") }, "previews are not fields")
        let segmented = images.filter(\.segmented)
        #expect(segmented.allSatisfy { $0.channel == "w1" && $0.width == 704 })
        #expect(segmented.map { "\($0.timepoint!.label) \($0.field!)" } == ["1 1", "1 2", "2 1", "2 2"])
        #expect(images.filter { !$0.segmented }.map(\.channel) == Array(repeating: "w2", count: 4))
        #expect(try store.progress(plate: "P7").first?.images == 4)
        #expect(chosen.settings.hasSuffix(", channel W1"), "a plate keeps the channel it was first submitted with")
    }

    @Test func aLaterScanIsANewTimePointOfTheSamePlate() throws {
        let day1 = try makePlate(["P7_B02_s1.png": "0f08d640930b.png", "P7_B03_s1.png": "08f52aa2add3.png"])
        let day2 = try makePlate(["P7_B02_s1.png": "1974fbb27dcf.png", "P7_B03_s1.png": "17754cb5b287.png"])
        let store = try freshStore()
        _ = try submitter.submit(folder: day1.path, plate: "P7", timepoint: TimePoint(scan: 1), to: store)
        let s = try submitter.submit(folder: day2.path, plate: "P7", timepoint: TimePoint(scan: 2), to: store)
        #expect(s == SubmitSummary(newImages: 2, unreadableImages: 0, newJobs: 4))
        #expect(try store.progress(plate: nil).map(\.plate) == ["P7"], "one plate, not two")
        #expect(try store.images(plate: "P7").map { "\($0.well!) \($0.timepoint!.label)" } == ["B02 1", "B03 1", "B02 2", "B03 2"])
    }

    @Test func aLaterScanWithoutItsTimePointIsRefusedImageByImage() throws {
        let day1 = try makePlate(["P7_B02_s1.png": "0f08d640930b.png"])
        let day2 = try makePlate(["P7_B02_s1.png": "1974fbb27dcf.png", "P7_B04_s1.png": "17754cb5b287.png"])
        let store = try freshStore()
        _ = try submitter.submit(folder: day1.path, plate: "P7", to: store)
        let s = try submitter.submit(folder: day2.path, plate: "P7", to: store)
        #expect(s == SubmitSummary(newImages: 2, unreadableImages: 1, newJobs: 2), "B04 is new; B02 field 1 is taken")
        let error = try #require(try store.unreadableImages(plate: "P7").first?.error)
        #expect(error.contains(day2.path + "/P7_B02_s1.png: same well B02, field 1") && error.contains(day1.path + "/P7_B02_s1.png"))
        #expect(error.contains("--timepoint"))
    }

    @Test func incucyteNamesGiveElapsedTimePoints() throws {
        let plate = try makePlate(["VID7_Phase_B2_1_00d00h00m.png": "0f08d640930b.png", "VID7_Phase_B2_1_00d12h00m.png": "08f52aa2add3.png",
                                   "VID7_Phase_B2_1_01d00h00m.png": "1974fbb27dcf.png"])
        let images = try PlateScanner().scan(folder: plate.path)
        #expect(images.map { $0.timepoint?.order } == [0, 720, 1440])
        #expect(images.allSatisfy { $0.well == "B02" && $0.channel == "Phase" && $0.segmented && $0.error == nil })
    }

    @Test func manifestGivesTimePointAndChannelAndNamesItsBadRows() throws {
        let plate = try makePlate(["a.png": "0f08d640930b.png", "b.png": "08f52aa2add3.png", "c.png": "1974fbb27dcf.png"])
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well,field,timepoint,channel\na.png,B02,1,1,bf\nb.png,B02,1,01d00h00m,bf\nc.png,B02,1,tomorrow,bf\n"
            .write(to: manifest, atomically: true, encoding: .utf8)
        let images = try PlateScanner(manifest: try Manifest(path: manifest.path)).scan(folder: plate.path)
        #expect(images.map { $0.timepoint?.label } == ["1", "01d00h00m", nil])
        #expect(images.map(\.channel) == ["bf", "bf", nil])
        #expect(images[2].error?.contains("row 4: timepoint \"tomorrow\"") == true)
    }

    /// A multi-page TIFF (a stack of two fields): the manifest's `page` picks the field, checked
    /// at submit and carried to the workers.
    @Test func manifestPageChoosesTheFieldOfAMultiPageTIFF() throws {
        let plate = try makePlate([:])
        let first = try PNGCodec.readGray(demoPlate.appendingPathComponent("0f08d640930b.png").path)
        let second = try PNGCodec.readGray(demoPlate.appendingPathComponent("08f52aa2add3.png").path)
        try TIFFWriter(bits: 8).write([first.pixels, second.pixels], width: 704, height: 520, to: plate.appendingPathComponent("stack.tif").path)
        try TIFFWriter(bits: 8).write([first.pixels], width: 704, height: 520, to: plate.appendingPathComponent("one.tif").path)
        let manifest = plate.appendingPathComponent("manifest.csv")
        try "file,well,field,page\nstack.tif,B02,1,2\none.tif,B03,1,2\n".write(to: manifest, atomically: true, encoding: .utf8)
        let images = try PlateScanner(manifest: try Manifest(path: manifest.path)).scan(folder: plate.path)
        let stack = try #require(images.first { $0.path.hasSuffix("stack.tif") })
        #expect(stack.page == 1 && stack.error == nil && stack.width == 704)
        let one = try #require(images.first { $0.path.hasSuffix("one.tif") })
        #expect(one.error?.contains("page 2 asked for, the file has 1") == true)
        let jobs = submitter.submission(plate: "P", folder: plate.path, images: [stack]).jobs
        #expect(try jobs.filter { $0.kind == InferJob.kind }.allSatisfy { try InferJob(jobArgs: $0.args).page == 1 })
        let decoded = try ImageFile.read(stack.path, page: 1)
        #expect(decoded.width == 704 && IntensityRule.none.apply(decoded).pixels == second.pixels)
    }
}
