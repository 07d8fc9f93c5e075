import Foundation
import Imaging
import JobStore
import PlateFixtures
import Testing

/// What a night leaves for a plate, made without the networks: `wells` x `fields` fields, each
/// a real crop of a demo field written as a PNG, whose merges stored `cells(well, field)`
/// rectangular cells typed by column (1–8 SH-SY5Y, 9–16 astrocytes, 17– cortical).
struct StoredPlate {
    let folder: URL
    let db: String

    init(name: String, wells: [String], fields: Int, width: Int, height: Int, writeImages: Bool = true,
         cells: (_ well: String, _ field: Int) -> Int) throws {
        let work = temporaryFolder("plateseg-scale")
        folder = work.appendingPathComponent(name)
        db = work.appendingPathComponent("plate.sqlite").path
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let source = try PNGCodec.readGray(demo.appendingPathComponent("plate/0f08d640930b.png").path)
        var images: [NewImage] = []
        var jobs: [NewJob] = []
        var counts: [String: Int] = [:]
        for (w, well) in wells.enumerated() {
            for f in 1...fields {
                let path = folder.appendingPathComponent("\(name)_\(well)_s\(f).png").path
                var hash = "h\(w)-\(f)"
                if writeImages {
                    let crop = source.crop(PixelRect(x: (w * 37 + f * 11) % (source.width - width), y: (w * 13 + f * 7) % (source.height - height),
                                                     width: width, height: height))
                    try PNGCodec.writeGray(crop, to: path)
                    hash = ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: path)))
                }
                images.append(NewImage(path: path, well: well, field: f, width: width, height: height, contentHash: hash))
                jobs.append(NewJob(key: "merge/\(path)", kind: "merge", imagePath: path,
                                   args: MergeJob(image: path, width: width, height: height).jobArgs()))
                counts[path] = cells(well, f)
            }
        }
        let store = try openJobStore(db)
        _ = try store.submit(PlateSubmission(plate: name, root: folder.path, images: images, jobs: jobs))
        let columns = max(1, Int(Double(width / 6).squareRoot() * 2))
        var job = try store.claim(owner: "t", leaseSeconds: 600)
        while let claimed = job {
            let path = try MergeJob(jobArgs: claimed.args).image
            let well = images.first { $0.path == path }!.well!
            let column = WellName.position(well)!.column
            let type = column <= 8 ? "shsy5y" : column <= 16 ? "astro" : "cort"
            let records = (0..<counts[path]!).map { i -> CellRecord in
                let x = (i % columns) * 6 % (width - 4), y = (i / columns) * 6 % (height - 4)
                let mask = Mask(imageWidth: width, imageHeight: height, window: PixelRect(x: x, y: y, width: 4, height: 4),
                                bits: [UInt8](repeating: 1, count: 16))
                return CellRecord(cellType: type, score: 0.8, area: 16, box: (x, y, 4, 4), centroid: mask.centroid,
                                  rle: COCORLE(mask: mask).compressedString)
            }
            job = try store.completeAndClaim(claimed.lease, result: JobResult(cells: records, dropsInputs: true), owner: "t",
                                             leaseSeconds: 600, plate: nil)
        }
    }
}

/// Runs a program and returns its exit status, its standard error, and its own peak resident
/// memory. Started from a small Python process: a child spawned straight from the test process
/// would count the test process's memory as its own (Linux keeps, across `exec`, the largest
/// resident set of the memory the child began with).
func measured(_ executable: URL, _ args: [String]) throws -> (status: Int32, peakMiB: Double, text: String) {
    let folder = temporaryFolder("plateseg-measured")
    let peak = folder.appendingPathComponent("peak"), log = folder.appendingPathComponent("stderr.log")
    let launcher = """
        import os, sys
        pid = os.fork()
        if pid == 0:
            os.dup2(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.execv(sys.argv[3], sys.argv[3:])
        _, status, usage = os.wait4(pid, 0)
        open(sys.argv[1], "w").write(str(usage.ru_maxrss))
        sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
        """
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", launcher, peak.path, log.path, executable.path] + args
    try p.run()
    p.waitUntilExit()
    let kilobytes = Double((try? String(contentsOf: peak, encoding: .utf8)) ?? "") ?? .infinity
    return (p.terminationStatus, kilobytes / 1024, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
}

func wells384() -> [String] {
    (0..<16).flatMap { r in (1...24).map { WellName.rowName(r) + String(format: "%02d", $0) } }
}

/// A 384-well plate's outputs: the exports stream the cells from the database (memory bounded
/// whatever the plate's size), write by the standard, and leave nothing half-written.
@Suite(.serialized) struct ExportAtScaleTests {
    static let plate = Result { try StoredPlate(name: "big", wells: wells384(), fields: 9, width: 128, height: 96, writeImages: false) { _, _ in 100 } }

    func plateseg(_ args: [String]) throws -> (status: Int32, peakMiB: Double, text: String) {
        try measured(products.appendingPathComponent("plateseg"), args)
    }

    /// 345,600 cells: holding them (as JSON objects, or as one string) would take gigabytes.
    @Test(arguments: ["csv", "coco"])
    func anExportOfAPlateStaysWithinAFixedMemory(format: String) throws {
        let plate = try Self.plate.get()
        let out = temporaryFolder("plateseg-export").appendingPathComponent("cells.\(format)").path
        let (status, peak, text) = try plateseg(["export", "--db", plate.db, "--format", format, "--out", out])
        #expect(status == 0, "\(text)")
        #expect(peak < 150, "export --format \(format) peaked at \(Int(peak)) MiB")
        let check = format == "csv"
            ? "import csv,sys; rows=list(csv.reader(open(sys.argv[1], newline=''))); assert len(rows)==345601 and rows[0][5]=='image', rows[0]; print(rows[1][5])"
            : "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['annotations'])==345600 and len(d['images'])==3456; print(d['images'][0]['file_name'])"
        let name = try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", check, out])
        #expect(name.hasPrefix("big_A01_s1.png"), "images by their path in the plate folder: \(name)")
    }

    @Test func labelImagesOpenInTifffileWithOneIdACell() throws {
        let plate = try StoredPlate(name: "lab", wells: ["B02", "B03"], fields: 2, width: 128, height: 96, writeImages: false) { _, f in 30 * f }
        let out = temporaryFolder("plateseg-labels").appendingPathComponent("labels").path
        let (status, _, text) = try plateseg(["export", "--db", plate.db, "--format", "labels", "--out", out])
        #expect(status == 0, "\(text)")
        let check = """
            import csv, sys, tifffile
            root = sys.argv[1]
            rows = list(csv.DictReader(open(root + '/cells.csv', newline='')))
            assert len(rows) == 180, len(rows)
            a = tifffile.imread(root + '/lab/lab_B03_s2.tif')
            assert a.dtype.name == 'uint16' and a.shape == (96, 128), (a.dtype, a.shape)
            mine = [r for r in rows if r['label_file'] == 'lab/lab_B03_s2.tif']
            assert int(a.max()) == len(mine) == 60, (a.max(), len(mine))
            for r in mine:
                n = int((a == int(r['label'])).sum())
                assert n == int(r['area']), (r, n)
            print('labels ok')
            """
        #expect(try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", check, out]).contains("labels ok"))
    }

    /// A disk that fills up mid-export: one line, exit 1, nothing under the name asked for.
    @Test(.enabled(if: TmpfsMount.allowed, "mounting a small tmpfs needs root and CAP_SYS_ADMIN"))
    func aFailedExportLeavesNothingUnderItsName() throws {
        let plate = try Self.plate.get()
        let disk = temporaryFolder("plateseg-export-full")
        _ = try run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=1m", "plateseg-export-full", disk.path])
        defer { _ = try? run(URL(fileURLWithPath: "/bin/umount"), [disk.path]) }
        for format in ["csv", "coco", "labels"] {
            let out = disk.appendingPathComponent("cells.\(format)").path
            let (status, _, text) = try plateseg(["export", "--db", plate.db, "--format", format, "--out", out])
            #expect(status == 1 && text.contains(out) && text.split(separator: "\n").count == 1, "\(format): \(text)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path).isEmpty, "\(format) left a file behind")
        }
    }
}

/// The report of a 384-well plate: a map a person reads, a page per well, thumbnails not
/// full-size pictures, and the first page drawn by a real browser.
@Suite(.serialized) struct ReportAtScaleTests {
    @Test func a384WellPlatesReportDrawsItsMapInTheBrowser() throws {
        let wells = wells384()
        let plate = try StoredPlate(name: "map", wells: wells, fields: 1, width: 96, height: 72) { well, _ in
            (WellName.position(well)!.row + 1) * 3
        }
        let report = temporaryFolder("plateseg-report384").appendingPathComponent("report")
        let made = try run(products.appendingPathComponent("plateseg"), ["report", "--db", plate.db, "--out", report.path])
        #expect(made.contains("report: "))
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.contains("platemap pm384") && !html.contains("class=\"thumb\""), "a large plate's first page holds no pictures")
        let wellPages = try FileManager.default.contentsOfDirectory(atPath: report.appendingPathComponent("wells/map").path)
        #expect(wellPages.count == 384)
        let overlays = (try? FileManager.default.contentsOfDirectory(atPath: report.appendingPathComponent("overlays/map").path)) ?? []
        #expect(overlays.isEmpty, "no full-size overlays unless asked for")
        let thumbs = try FileManager.default.contentsOfDirectory(atPath: report.appendingPathComponent("thumbs/map").path)
        #expect(thumbs.count == 384)

        let dom = try run(URL(fileURLWithPath: chromium), [
            "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000",
            "--dump-dom", report.appendingPathComponent("index.html").absoluteString,
        ])
        #expect(dom.contains("data-wells=\"384\""))
        let shot = report.deletingLastPathComponent().appendingPathComponent("map.png")
        _ = try run(URL(fileURLWithPath: chromium), [
            "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--hide-scrollbars",
            "--window-size=1400,1100", "--screenshot=\(shot.path)", report.appendingPathComponent("index.html").absoluteString,
        ])
        // The three types lie in column bands: each band's colour fills a good part of the map,
        // and the rows' counts grow downwards, so the lower rows are the more saturated.
        let (width, height, rgb) = try PNGCodec.readRGB(shot.path)
        var bands: [String: Int] = ["shsy5y": 0, "astro": 0, "cort": 0]
        for i in 0..<(width * height) {
            let r = Int(rgb[3 * i]), g = Int(rgb[3 * i + 1]), b = Int(rgb[3 * i + 2])
            if g > r + 30 && g > b + 10 { bands["shsy5y", default: 0] += 1 }
            if r > g + 25 && g > b + 40 { bands["astro", default: 0] += 1 }
            if r > g + 30 && b > g + 15 { bands["cort", default: 0] += 1 }
        }
        for (type, pixels) in bands { #expect(pixels > 20_000, "\(type): \(pixels) pixels of its colour in the screenshot") }

        let wellPage = try String(contentsOf: report.appendingPathComponent("wells/map/P24.html"), encoding: .utf8)
        #expect(wellPage.contains("map_P24_s1.png") && wellPage.contains("class=\"thumb\""))
    }
}
