import Foundation
import PlateFixtures
import Testing

/// A live-cell plate as an ImageXpress writes it — `TimePoint_N` folders, two wavelengths,
/// previews — run with `--channel`, counted over time, and reported with growth curves that
/// headless Chromium renders.
@Suite(.serialized) struct TimeSeriesRunTests {
    let work: URL
    let plate: URL
    let models: URL
    let db: String

    init() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-e2e-time-\(UUID().uuidString)")
        plate = work.appendingPathComponent("LIVE1")
        models = work.appendingPathComponent("models")
        db = work.appendingPathComponent("live.sqlite").path
        let fm = FileManager.default
        try fm.createDirectory(at: models, withIntermediateDirectories: true)
        let fields = [("B02", ["0f08d640930b", "08f52aa2add3", "0323e81d23d9"]), ("C02", ["1974fbb27dcf", "17754cb5b287", "053d61766edb"])]
        for (well, sources) in fields {
            for (t, source) in sources.enumerated() {
                let folder = plate.appendingPathComponent("TimePoint_\(t + 1)")
                try fm.createDirectory(at: folder, withIntermediateDirectories: true)
                for (w, suffix) in [(1, "5D3F0A1B-1B2C-4D5E-8F90-123456789ABC"), (2, "6E4A1B2C-1B2C-4D5E-8F90-123456789ABC")] {
                    let image = demo.appendingPathComponent("plate/\(source).png")
                    try fm.copyItem(at: image, to: folder.appendingPathComponent("LIVE1_\(well)_s1_w\(w)\(suffix).png"))
                    try fm.copyItem(at: image, to: folder.appendingPathComponent("LIVE1_\(well)_s1_w\(w)_thumb\(suffix).png"))
                }
            }
        }
        for name in ["yolox", "maskrcnn", "upernet"] {
            try fm.copyItem(at: fixtures.appendingPathComponent("\(name).safetensors"), to: models.appendingPathComponent("\(name).safetensors"))
        }
        try fm.copyItem(at: intensityReference, to: models.appendingPathComponent("intensity.json"))
    }

    @discardableResult
    func plateseg(_ args: [String], expectStatus: Int32 = 0) throws -> String {
        try run(products.appendingPathComponent("plateseg"), args, expectStatus: expectStatus)
    }

    @Test func aTimeSeriesIsCountedOverTimeAndReportedWithGrowthCurves() throws {
        let refused = try plateseg(["run", plate.path, "--db", db, "--models-dir", models.path], expectStatus: 1)
        #expect(refused.contains("several channels (w1, w2)"))

        let out = try plateseg(["run", plate.path, "--channel", "w1", "--workers", "2", "--db", db, "--models-dir", models.path])
        #expect(out.contains("12 new images (0 unreadable), 24 new jobs"), "6 fields of w1 segmented, 6 of w2 listed")
        let status = try plateseg(["status", "--db", db])
        #expect(status.contains("LIVE1: 3 time point(s): 1, 2, 3"))
        #expect(status.contains("LIVE1: channel w1 segmented; not segmented: w2 (6 images)"))

        let cells = try plateseg(["query", "--db", db, "--cells", "--format", "csv"]).split(separator: "\n")
        #expect(cells.count > 10)
        let growth = try plateseg(["query", "--db", db, "--over-time", "--format", "csv"]).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        #expect(growth.first == ["plate", "well", "cell_type", "1", "2", "3"])
        #expect(growth.dropFirst().reduce(0) { $0 + $1.dropFirst(3).reduce(0) { $0 + Int($1)! } } == cells.count - 1)
        #expect(Set(growth.dropFirst().map { $0[1] }) == ["B02", "C02"])

        let atTwo = try plateseg(["query", "--db", db, "--cells", "--timepoint", "2", "--format", "csv"]).split(separator: "\n")
        #expect(atTwo.count > 1 && atTwo.dropFirst().allSatisfy { $0.split(separator: ",")[3] == "2" })
        let column = growth[0].firstIndex(of: "2")!
        #expect(atTwo.count - 1 == growth.dropFirst().reduce(0) { $0 + Int($1[column])! })
        let json = try plateseg(["query", "--db", db, "--format", "json", "--well", "B02"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        #expect(Set(rows.compactMap { $0["timepoint"] as? Int }) == [1, 2, 3])

        let report = work.appendingPathComponent("report")
        try plateseg(["report", "--db", db, "--out", report.path, "--models-dir", models.path])
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.contains("Growth curves") && html.components(separatedBy: "class=\"tpmap\"").count - 1 == 3)
        let dom = try run(URL(fileURLWithPath: chromium), [
            "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000",
            "--dump-dom", report.appendingPathComponent("index.html").absoluteString,
        ])
        #expect(dom.contains("data-growth-curves=\"2\""), "one plot per well")
        #expect(dom.contains("data-thumbs=\"6\"") && dom.contains("data-thumbs-loaded=\"6\""), "every field's picture decoded")
        #expect(dom.contains("class=\"tpslider\""))
    }
}
