import CTIFF
import Foundation
import Imaging
import PlateFixtures
import Testing

/// The `plateseg` program as a user runs it: real demo images, real networks (the small
/// random-weight parity models, so the suite needs no trained weights), two worker processes,
/// and the report rendered by headless Chromium.
@Suite(.serialized) struct PlateRunTests {
    let work: URL
    let plate: URL
    let models: URL
    let db: String

    init() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-e2e-\(UUID().uuidString)")
        plate = work.appendingPathComponent("plate")
        models = work.appendingPathComponent("models")
        db = work.appendingPathComponent("plate.sqlite").path
        let fm = FileManager.default
        try fm.createDirectory(at: plate, withIntermediateDirectories: true)
        try fm.createDirectory(at: models, withIntermediateDirectories: true)
        for (name, source) in [("P1_B02_s1.png", "0f08d640930b"), ("P1_C02_s1.png", "08f52aa2add3"), ("P1_D02_s1.png", "0323e81d23d9")] {
            try fm.copyItem(at: demo.appendingPathComponent("plate/\(source).png"), to: plate.appendingPathComponent(name))
        }
        // The shipped intensity reference: plates are submitted with --intensity auto.
        try fm.copyItem(at: intensityReference, to: models.appendingPathComponent("intensity.json"))
    }

    /// A damaged file among good ones: recorded, reported, and the rest of the plate runs.
    func addDamagedImage() throws {
        let bytes = try Data(contentsOf: plate.appendingPathComponent("P1_B02_s1.png"))
        try bytes.prefix(3000).write(to: plate.appendingPathComponent("P1_B03_s1.png"))
    }

    func installModels() throws {
        for name in ["yolox", "maskrcnn", "upernet"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(name).safetensors"),
                                             to: models.appendingPathComponent("\(name).safetensors"))
        }
    }

    @discardableResult
    func plateseg(_ args: [String], expectStatus: Int32 = 0) throws -> String {
        try run(products.appendingPathComponent("plateseg"), args, expectStatus: expectStatus)
    }

    @Test(arguments: Driver.allCases)
    func plateRunsQueriesExportsAndReports(driver: Driver) throws {
        let db = try driver.freshLocation()
        try installModels()
        try addDamagedImage()
        // Exit status 1: the plate has an image that could not be segmented.
        let out = try plateseg(["run", plate.path, "--workers", "2", "--db", db, "--models-dir", models.path], expectStatus: 1)
        #expect(out.contains("4 new images (1 unreadable), 12 new jobs"))
        #expect(out.contains("note: no ensemble.json in \(models.path): cells are merged with the built-in defaults"))
        #expect(out.contains("Cells per well"))
        #expect(out.contains("P1_B03_s1.png"), "the damaged image is named in the summary")

        let status = try plateseg(["status", "--db", db])
        #expect(status.contains("Unreadable images") && status.contains("P1_B03_s1.png"))
        #expect(!status.contains("Failed jobs"))

        let csv = try plateseg(["query", "--db", db, "--cells", "--format", "csv"]).split(separator: "\n")
        #expect(csv.first == "plate,well,field,timepoint,channel,image,cell_type,score,area,box_x,box_y,box_width,box_height,centroid_x,centroid_y")
        let counts = try plateseg(["query", "--db", db, "--format", "json"])
        let perWell = try #require(try JSONSerialization.jsonObject(with: Data(counts.utf8)) as? [[String: Any]])
        #expect(perWell.reduce(0) { $0 + ($1["cells"] as? Int ?? 0) } == csv.count - 1)

        let cocoPath = work.appendingPathComponent("cells.json").path
        try plateseg(["export", "--db", db, "--format", "coco", "--out", cocoPath])
        let coco = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cocoPath))) as? [String: Any])
        #expect((coco["annotations"] as? [Any])?.count == csv.count - 1)
        #expect((coco["categories"] as? [Any])?.count == 3)

        let trace = try plateseg(["trace", "--db", db, "P1_C02_s1.png"])
        #expect(trace.contains("merge") && trace.contains("maskrcnn.safetensors") && trace.contains("fnv1a64:"))

        let report = work.appendingPathComponent("report")
        try plateseg(["report", "--db", db, "--out", report.path, "--models-dir", models.path])
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.contains("class=\"platemap pm96\"") && html.contains("P1_B03_s1.png"))
        #expect(html.contains("Made with") && html.contains("maskrcnn.safetensors") && html.contains("ensembleConfig"))
        let dom = try run(URL(fileURLWithPath: chromium), [
            "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000",
            "--dump-dom", report.appendingPathComponent("index.html").absoluteString,
        ])
        #expect(dom.contains("class=\"platemap pm96\""))
        #expect(dom.contains("data-thumbs=\"3\"") && dom.contains("data-thumbs-loaded=\"3\""), "all three thumbnails decoded in the browser")
        let wellPage = try String(contentsOf: report.appendingPathComponent("wells/plate/C02.html"), encoding: .utf8)
        let overlay = try #require(wellPage.firstMatch(of: /href="..\/..\/(overlays\/[^"]+\.png)"/)?.1, "a small plate's fields link to full-size overlays")
        let full = try PNGCodec.readHeader(report.appendingPathComponent(String(overlay)).path)
        #expect(full.width == 704 && full.height == 520)

        // Running again resumes: nothing new, same cells.
        let again = try plateseg(["run", plate.path, "--workers", "1", "--db", db, "--models-dir", models.path], expectStatus: 1)
        #expect(again.contains("0 new images (0 unreadable), 0 new jobs"))
        #expect(try plateseg(["query", "--db", db, "--cells", "--format", "csv"]).split(separator: "\n") == csv)

        // Repaired and submitted again: the image is segmented, and the plate is whole.
        try FileManager.default.removeItem(at: plate.appendingPathComponent("P1_B03_s1.png"))
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/1974fbb27dcf.png"), to: plate.appendingPathComponent("P1_B03_s1.png"))
        let repaired = try plateseg(["run", plate.path, "--workers", "2", "--db", db, "--models-dir", models.path])
        #expect(repaired.contains("1 new images (0 unreadable), 4 new jobs"))
        #expect(!(try plateseg(["status", "--db", db])).contains("Unreadable"))
        #expect(try plateseg(["query", "--db", db, "--well", "B03", "--format", "csv"]).split(separator: "\n").count > 1)

        // Overlays are drawn at report time: an image replaced since it was segmented is not outlined.
        try FileManager.default.removeItem(at: plate.appendingPathComponent("P1_C02_s1.png"))
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/17754cb5b287.png"), to: plate.appendingPathComponent("P1_C02_s1.png"))
        let later = work.appendingPathComponent("report-later")
        try plateseg(["report", "--db", db, "--out", later.path, "--models-dir", models.path])
        let laterHTML = try String(contentsOf: later.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(laterHTML.contains("P1_C02_s1.png changed since it was segmented"))
        #expect(laterHTML.components(separatedBy: "class=\"thumb\"").count - 1 == 3, "the other three images keep their pictures")
    }

    /// A worker process killed mid-run (as the kernel kills for memory): `run` names it and why,
    /// gives its job back at once, starts another in its place, and the plate completes.
    @Test func aWorkerKilledMidRunIsReplacedAndThePlateCompletes() throws {
        try installModels()
        for i in 3...8 {
            try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/\(["1974fbb27dcf", "17754cb5b287", "053d61766edb"][i % 3]).png"),
                                             to: plate.appendingPathComponent("P1_B0\(i)_s1.png"))
        }
        let log = work.appendingPathComponent("run.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        let runner = Process()
        runner.executableURL = products.appendingPathComponent("plateseg")
        runner.arguments = ["run", plate.path, "--workers", "2", "--db", db, "--models-dir", models.path]
        runner.standardOutput = output
        runner.standardError = output
        try runner.run()
        var victim: pid_t?
        while runner.isRunning && victim == nil {
            victim = children(of: runner.processIdentifier).first
            if victim == nil { Thread.sleep(forTimeInterval: 0.05) }
        }
        let killed = try #require(victim, "run started no worker")
        kill(killed, SIGKILL)
        runner.waitUntilExit()
        let out = try String(contentsOf: log, encoding: .utf8)
        #expect(out.contains("worker process \(killed) was killed by signal 9 (SIGKILL, perhaps for memory)"), "\(out)")
        #expect(out.contains("started process") && out.contains("in its place"))
        #expect(out.contains("plate plate: complete, 9 images segmented; 1 worker process(es) died"), "\(out)")
        #expect(runner.terminationStatus == 0)
    }

    /// Options that cannot work are refused before anything is written, saying what to give.
    @Test(arguments: [
        (["run", "--workers", "0"], "--workers 0: give at least 1 worker process"),
        (["submit", "--tile", "10"], "--tile 10: give at least 128 pixels"),
        (["submit", "--models", "yolox,foo"], "--models: no network named foo; the networks are yolox, maskrcnn, upernet"),
        (["worker", "--lease", "0"], "--lease 0.0: give at least 3 seconds"),
        (["worker", "--concurrency", "0"], "--concurrency 0: give at least 1"),
        (["submit", "--max-attempts", "0"], "--max-attempts 0: give at least 1"),
        (["submit", "--tile", "256", "--overlap", "300"], "--overlap must be at least 0 and smaller than --tile"),
    ])
    func optionsThatCannotWorkAreRefused(args: [String], message: String) throws {
        let full = args[0] == "worker" ? args : [args[0], plate.path] + args.dropFirst()
        let out = try plateseg(full + ["--db", db], expectStatus: 64)
        #expect(out.contains(message), "\(out)")
        #expect(!FileManager.default.fileExists(atPath: db), "nothing written")
    }

    /// `status --watch` into a pipe or a file shows each refresh as it comes, not at exit.
    @Test func statusWatchWritesIntoAFileAsItGoes() throws {
        try plateseg(["submit", plate.path, "--db", db])
        let log = work.appendingPathComponent("watch.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let watcher = Process()
        watcher.executableURL = products.appendingPathComponent("plateseg")
        watcher.arguments = ["status", "--watch", "--db", db]
        watcher.standardOutput = try FileHandle(forWritingTo: log)
        try watcher.run()
        defer {
            kill(watcher.processIdentifier, SIGKILL)
            watcher.waitUntilExit()
        }
        // Waits for the first refresh (or for the watcher to end, which it must not); a
        // watcher that never writes fails the test after a minute instead of hanging it.
        let giveUp = Date().addingTimeInterval(60)
        while watcher.isRunning, Date() < giveUp, (try Data(contentsOf: log)).isEmpty { Thread.sleep(forTimeInterval: 0.05) }
        #expect(watcher.isRunning)
        #expect(!(try Data(contentsOf: log)).isEmpty, "nothing written while watching")
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text.contains("plate") && !text.contains("\u{1B}[2J"), "\(text)")
    }

    @Test func anImageChangedAfterSubmissionIsRefused() throws {
        try installModels()
        try plateseg(["submit", plate.path, "--db", db])
        try FileManager.default.removeItem(at: plate.appendingPathComponent("P1_C02_s1.png"))
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/17754cb5b287.png"), to: plate.appendingPathComponent("P1_C02_s1.png"))
        let out = try plateseg(["run", plate.path, "--workers", "1", "--db", db, "--models-dir", models.path], expectStatus: 1)
        #expect(out.contains("P1_C02_s1.png: the file changed since the plate was submitted"))
        let resubmit = try plateseg(["submit", plate.path, "--db", db, "--tile", "512"], expectStatus: 1)
        #expect(resubmit.contains("was submitted with tiles 768 px"))
    }

    /// Names are data, never markup: a file and a plate named like HTML render as text in the
    /// browser (no script runs), and what plateseg writes follows the user's umask.
    @Test func theReportShowsHostileNamesAsTextAndFilesFollowTheUmask() throws {
        try installModels()
        let hostile = "P1_B03_s1<img src=x onerror=\"document.title='owned'\">.png"
        try Data(contentsOf: plate.appendingPathComponent("P1_B02_s1.png")).prefix(3000).write(to: plate.appendingPathComponent(hostile))
        let plateName = "<script>document.title='owned'</script>"
        let umasked = { (args: [String]) throws -> String in
            try run(URL(fileURLWithPath: "/bin/sh"), ["-c", "umask 027; exec \"$0\" \"$@\"", products.appendingPathComponent("plateseg").path] + args)
        }
        let db = work.appendingPathComponent("umask.sqlite").path
        _ = try? umasked(["run", plate.path, "--plate", plateName, "--workers", "1", "--models", "yolox", "--db", db,
                          "--models-dir", models.path])
        let report = work.appendingPathComponent("report")
        let csv = work.appendingPathComponent("cells.csv")
        _ = try umasked(["report", "--db", db, "--out", report.path, "--models-dir", models.path])
        _ = try umasked(["export", "--db", db, "--out", csv.path])
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.contains(hostile.replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")))
        let dom = try run(URL(fileURLWithPath: chromium), [
            "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000",
            "--dump-dom", report.appendingPathComponent("index.html").absoluteString,
        ])
        #expect(dom.contains("P1_B03_s1&lt;img src=x onerror="), "the name is text in the page")
        #expect(!dom.contains("owned</title>") && !dom.contains("<img src=\"x\""), "no markup from a name took effect")
        #expect(dom.contains("Plate &lt;script&gt;"))
        var written = [db, csv.path, report.appendingPathComponent("index.html").path]
        written += try FileManager.default.contentsOfDirectory(atPath: report.path).map { report.appendingPathComponent($0).path }
        for path in written {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode & 0o027 == 0, "\(path) has mode \(String(mode, radix: 8)) under umask 027")
        }
    }

    /// After pruning, the cells are all still there, and a merge run again first remakes the
    /// tile outputs it needs: the same cells come back.
    @Test func prunedPlatesKeepTheirCellsAndCanBeMergedAgain() throws {
        try installModels()
        let run = ["run", plate.path, "--workers", "1", "--models", "yolox", "--db", db, "--models-dir", models.path]
        try plateseg(run + ["--keep-tile-outputs"])
        #expect(try plateseg(["status", "--db", db]).contains("tile outputs: plate 3 ("))
        let cells = try plateseg(["query", "--db", db, "--cells", "--format", "csv"])
        let out = try plateseg(["prune", "--db", db, "--plate", "plate"])
        #expect(out.contains("plate plate: removed 3 tile outputs of 3 merged images"), "\(out)")
        #expect(try plateseg(["query", "--db", db, "--cells", "--format", "csv"]) == cells)
        #expect(try plateseg(["prune", "--db", db, "--plate", "nope"], expectStatus: 64).contains("--plate nope: no such plate"))
        let merge = try #require(try plateseg(["trace", "--db", db, "P1_C02_s1.png"]).firstMatch(of: /job (\d+) merge/)?.1)
        #expect(try plateseg(["retry", "--db", db, "--job", String(merge)]).contains("2 job(s) queued again"))
        try plateseg(run)
        #expect(try plateseg(["query", "--db", db, "--cells", "--format", "csv"]) == cells)
    }

    /// By default a merge removes the tile outputs it read: the database holds cells, not
    /// probability maps; single networks' scores then need the outputs kept, and say how.
    /// The demo's annotations of the field copied to P1_B02_s1.png, under that name.
    func demoTruthOfB02() throws -> URL {
        let truth = work.appendingPathComponent("truth.csv")
        let rows = try String(contentsOf: demo.appendingPathComponent("truth.csv"), encoding: .utf8)
            .split(whereSeparator: \.isNewline).filter { $0.hasPrefix("0f08d640930b,") }.map { "P1_B02_s1" + $0.dropFirst("0f08d640930b".count) }
        try (["id,annotation,width,height,cell_type"] + rows).joined(separator: "\n").write(to: truth, atomically: true, encoding: .utf8)
        return truth
    }

    @Test func tileOutputsAreRemovedOnceMergedUnlessKept() throws {
        try installModels()
        try plateseg(["run", plate.path, "--workers", "1", "--models", "yolox,maskrcnn", "--db", db, "--models-dir", models.path])
        let status = try plateseg(["status", "--db", db])
        #expect(status.contains("stored") && !status.contains("tile outputs:"), "\(status)")
        let truth = try demoTruthOfB02()
        let eval = ["eval", "--db", db, "--truth", truth.path, "--models-dir", models.path]
        #expect(try plateseg(eval).contains("ensemble"))
        let refused = try plateseg(eval + ["--model", "yolox"], expectStatus: 1)
        #expect(refused.contains("plate plate: its tile outputs were removed after its merges (the default); `eval --model yolox` needs them"))
        #expect(try plateseg(["retry", "--db", db, "--plate", "plate", "--keep-tile-outputs"]).contains("keeps its tile outputs from now on; 9 job(s) queued again"))
        try plateseg(["run", plate.path, "--workers", "1", "--models", "yolox,maskrcnn", "--db", db, "--models-dir", models.path])
        #expect(try plateseg(eval + ["--model", "all"]).contains("yolox"))
        #expect(try plateseg(["status", "--db", db]).contains("tile outputs: plate 6 ("))
    }

    @Test func aMissingModelFailsItsJobsUntilRetried() throws {
        try plateseg(["run", plate.path, "--workers", "1", "--db", db, "--models-dir", models.path, "--models", "maskrcnn"], expectStatus: 1)
        let status = try plateseg(["status", "--db", db])
        #expect(status.contains("Failed jobs") && status.contains("maskrcnn.safetensors: no such model file"))
        try installModels()
        #expect(try plateseg(["retry", "--db", db]).contains("3 job(s) queued again"))
        _ = try plateseg(["run", plate.path, "--workers", "1", "--db", db, "--models-dir", models.path, "--models", "maskrcnn"])
        #expect(!(try plateseg(["status", "--db", db])).contains("Failed jobs"))
    }

    @Test func statusQueryAndExportWorkWhileWorkersRun() throws {
        try installModels()
        let runner = Process()
        runner.executableURL = products.appendingPathComponent("plateseg")
        runner.arguments = ["run", plate.path, "--workers", "2", "--db", db, "--models-dir", models.path]
        runner.standardOutput = FileHandle.nullDevice
        runner.standardError = FileHandle.nullDevice
        try runner.run()
        // Each call fails the test if the command exits non-zero (a locked or half-written database).
        var polls = 0
        while runner.isRunning && !FileManager.default.fileExists(atPath: db) { Thread.sleep(forTimeInterval: 0.05) }
        while runner.isRunning {
            try plateseg(["status", "--db", db])
            polls += 1
            try plateseg(["query", "--db", db, "--format", "csv"])
            try plateseg(["export", "--db", db, "--out", work.appendingPathComponent("live.csv").path])
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(runner.terminationStatus == 0)
        #expect(polls >= 1, "the commands ran while the workers did")
    }

    /// Running a plate again resumes it: results of a model file or ensemble config replaced since
    /// are named, and made again with --redo-stale.
    @Test func resultsOfReplacedModelsAreNamedAndRedoneOnRequest() throws {
        try installModels()
        let args = ["run", plate.path, "--workers", "1", "--db", db, "--models-dir", models.path, "--models", "yolox"]
        #expect(!(try plateseg(args)).contains("other versions"))
        let file = models.appendingPathComponent("yolox.safetensors")
        var bytes = try Data(contentsOf: file)
        bytes.append(0)  // another version of the file: past the tensors' data, so it still loads
        try bytes.write(to: file)

        #expect(try plateseg(["status", "--db", db, "--models-dir", models.path])
            .contains("  3 tiles of plate plate were made by other versions of yolox.safetensors\n"))
        let again = try plateseg(args)
        #expect(again.contains("note: 3 tiles of plate plate were made by other versions of yolox.safetensors than those in"))
        let report = work.appendingPathComponent("report")
        try plateseg(["report", "--db", db, "--out", report.path, "--models-dir", models.path])
        #expect(try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
            .contains("3 tiles of plate plate were made by other versions of yolox.safetensors than those listed below"))

        let redo = try plateseg(args + ["--redo-stale"])
        #expect(redo.contains("3 tiles of plate plate were made by other versions of yolox.safetensors: 3 job(s) queued again"))
        #expect(!(try plateseg(args)).contains("other versions"), "redone with the current file")

        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("models/ensemble.json"),
                                         to: models.appendingPathComponent("ensemble.json"))
        let truth = try demoTruthOfB02()
        let eval = ["eval", "--db", db, "--truth", truth.path, "--models-dir", models.path]
        #expect(try plateseg(eval).contains("note: 3 merges of plate plate were made by other versions of ensemble.json than those in"))
        #expect(try plateseg(["retry", "--db", db, "--plate", "plate", "--stale", "--models-dir", models.path])
            .contains("3 merges of plate plate were made by other versions of ensemble.json\n6 job(s) queued again"),
                "with the tiles whose outputs the merges removed")
        #expect(!(try plateseg(args)).contains("other versions"))
        #expect(!(try plateseg(eval)).contains("note:"), "the stored cells are the folder's config's now")
    }

    /// The same fields as 16-bit TIFFs (x·257, and with a gain and an offset, as another camera
    /// would give) come out as the same cells as the 8-bit PNGs.
    @Test func sixteenBitTIFFsGiveTheSameCellsAsTheirEightBitOriginals() throws {
        try installModels()
        func cells(_ folder: URL, _ db: String) throws -> [String] {
            _ = try plateseg(["run", folder.path, "--plate", "P", "--workers", "2", "--db", db, "--models-dir", models.path])
            // Without the plate and image columns: the files differ by name only.
            return try plateseg(["query", "--db", db, "--cells", "--format", "csv"]).split(separator: "\n").map {
                $0.split(separator: ",", omittingEmptySubsequences: false).enumerated().filter { ![0, 5].contains($0.offset) }
                    .map(\.element).joined(separator: ",")
            }
        }
        let original = try cells(plate, db)
        #expect(original.count > 10)
        for (gain, offset) in [(257, 0), (41, 7000)] {
            let folder = work.appendingPathComponent("tiff-\(gain)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for name in try FileManager.default.contentsOfDirectory(atPath: plate.path) where name.hasSuffix(".png") {
                let gray = try PNGCodec.readGray(plate.appendingPathComponent(name).path)
                let samples = gray.pixels.map { UInt16(Int($0) * gain + offset) }
                try TIFFWriter(compression: COMPRESSION_LZW).write([littleEndian(samples)], width: gray.width, height: gray.height,
                                                                  to: folder.appendingPathComponent(name.replacingOccurrences(of: ".png", with: ".tif")).path)
            }
            #expect(try cells(folder, work.appendingPathComponent("tiff-\(gain).sqlite").path) == original, "x·\(gain)+\(offset)")
        }
    }

    /// A worker host that mounts the plate's folder elsewhere: without `--path-map` the job fails
    /// naming the host, the path and what to do; with it, the plate runs.
    @Test func aWorkerThatSeesThePlateElsewhereMapsItsPath() throws {
        try installModels()
        try plateseg(["submit", plate.path, "--db", db, "--models", "yolox", "--max-attempts", "1"])
        let mounted = work.appendingPathComponent("mounted-elsewhere")
        try FileManager.default.moveItem(at: plate, to: mounted)
        try plateseg(["worker", "--db", db, "--models-dir", models.path, "--exit-when-drained"])
        let status = try plateseg(["status", "--db", db])
        let host = ProcessInfo.processInfo.hostName
        #expect(status.contains("host \(host) cannot read \(plate.path)/P1_B02_s1.png"))
        #expect(status.contains("at the path they were submitted with") && status.contains("--path-map FROM=TO"))

        #expect(try plateseg(["retry", "--db", db]).contains("3 job(s) queued again"))
        try plateseg(["worker", "--db", db, "--models-dir", models.path, "--exit-when-drained", "--path-map", "\(plate.path)=\(mounted.path)"])
        #expect(!(try plateseg(["status", "--db", db])).contains("Failed jobs"))
        #expect(try plateseg(["query", "--db", db, "--format", "csv"]).split(separator: "\n").count > 1)
    }

    /// Two workers or one, SQLite or PostgreSQL: the same plate gives the same cells, byte for byte.
    @Test func sameInputsGiveTheSameCellsOnEveryDriver() throws {
        try installModels()
        let second = work.appendingPathComponent("second.sqlite").path
        let shared = try Driver.postgres.freshLocation()
        _ = try plateseg(["run", plate.path, "--workers", "2", "--db", db, "--models-dir", models.path])
        _ = try plateseg(["run", plate.path, "--workers", "1", "--db", second, "--models-dir", models.path])
        _ = try plateseg(["run", plate.path, "--workers", "2", "--db", shared, "--models-dir", models.path])
        let exports = try [db, second, shared].enumerated().map { i, location in
            let out = work.appendingPathComponent("cells-\(i).csv").path
            try plateseg(["export", "--db", location, "--out", out])
            return try Data(contentsOf: URL(fileURLWithPath: out))
        }
        #expect(exports[0].count > 1000)
        #expect(exports[0] == exports[1], "one worker or two")
        #expect(exports[0] == exports[2], "SQLite or PostgreSQL")
    }
}

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let demo = repositoryRoot.appendingPathComponent("demo")
let fixtures = repositoryRoot.appendingPathComponent("Tests/ModelsTests/Fixtures")
let intensityReference = repositoryRoot.appendingPathComponent("models/intensity.json")
let products = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/chromium"

/// The processes whose parent is `parent`, from /proc.
func children(of parent: pid_t) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { pid_t($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        // After the command name in parentheses: state, then the parent's pid.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && pid_t(fields[1]) == parent
    }
}

struct CommandFailed: Error, CustomStringConvertible {
    var description: String
}

/// Runs a program to completion and returns its standard output and error together.
func run(_ executable: URL, _ args: [String], expectStatus: Int32 = 0) throws -> String {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard p.terminationStatus == expectStatus else {
        throw CommandFailed(description: "\(executable.lastPathComponent) \(args.joined(separator: " ")) exited \(p.terminationStatus):\n\(text)")
    }
    return text
}
