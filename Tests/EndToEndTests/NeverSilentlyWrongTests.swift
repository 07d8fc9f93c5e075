import Foundation
import Imaging
import JobStore
import PlateFixtures
import Testing

/// What a hostile user found answered wrongly without a word, now answered rightly or refused
/// in one line: names with commas and quotes, two files of one name, a misnamed model file,
/// filters that match nothing because they are misspelt.
@Suite(.serialized) struct NeverSilentlyWrongTests {
    let work = temporaryFolder("plateseg-hostile")

    @discardableResult
    func plateseg(_ args: [String], expectStatus: Int32 = 0) throws -> String {
        try run(products.appendingPathComponent("plateseg"), args, expectStatus: expectStatus)
    }

    /// A plate of real demo fields under hostile names, stored as a merge would store it.
    func hostilePlate() throws -> StoredPlate {
        try StoredPlate(name: "Plate 7, day \"2\"", wells: ["B02", "B03"], fields: 1, width: 96, height: 72) { _, _ in 3 }
    }

    @Test func csvRoundTripsThroughPythonWhateverThePlateIsCalled() throws {
        let plate = try hostilePlate()
        let python = "import csv,sys,json; print(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))"
        let counts = work.appendingPathComponent("counts.csv")
        try plateseg(["query", "--db", plate.db, "--format", "csv"]).write(to: counts, atomically: true, encoding: .utf8)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", python, counts.path]).utf8)) as? [[String]])
        #expect(rows.count == 3 && rows.allSatisfy { $0.count == 8 })
        #expect(rows[1][0] == "Plate 7, day \"2\"" && rows[1][1] == "B02" && rows[1][4] == "3")
        let export = work.appendingPathComponent("cells.csv")
        try plateseg(["export", "--db", plate.db, "--out", export.path])
        let cells = try #require(try JSONSerialization.jsonObject(with: Data(try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", python, export.path]).utf8)) as? [[String]])
        #expect(cells.count == 7 && cells.allSatisfy { $0.count == 16 })
        #expect(cells[1][0] == "Plate 7, day \"2\"" && cells[1][5] == "Plate 7, day \"2\"_B02_s1.png")
    }

    @Test func filtersAreReadAsWrittenAndUnknownNamesAreNamed() throws {
        let plate = try hostilePlate()
        let b3 = try plateseg(["query", "--db", plate.db, "--well", "b3", "--cell-type", "SHSY5Y", "--format", "csv"])
        #expect(b3.split(separator: "\n").count == 2 && b3.contains(",B03,"))
        #expect(try plateseg(["query", "--db", plate.db, "--plate", "Plate 8"], expectStatus: 1)
            .contains("no plate Plate 8 in \(plate.db); its plates are Plate 7, day \"2\""))
        #expect(try plateseg(["query", "--db", plate.db, "--well", "H12"], expectStatus: 1).contains("no well H12 on any plate; its 2 wells are B02, B03"))
        #expect(try plateseg(["query", "--db", plate.db, "--cell-type", "neuron"], expectStatus: 1).contains("--cell-type neuron is not a cell type"))
        #expect(try plateseg(["query", "--db", plate.db, "--well", "B02", "--cell-type", "cort"]).contains("No cells match."),
                "a valid filter that matches nothing")
    }

    /// Two `x.png` in two subfolders are two images: exported under their paths, traced by them,
    /// and a bare `x.png` is refused naming both.
    @Test func twoFilesOfOneNameAreTwoNames() throws {
        let plate = work.appendingPathComponent("plate")
        for (folder, well, source) in [("a", "B02", "0f08d640930b"), ("b", "B03", "08f52aa2add3")] {
            try FileManager.default.createDirectory(at: plate.appendingPathComponent(folder), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/\(source).png"),
                                             to: plate.appendingPathComponent("\(folder)/x.png"))
            _ = well
        }
        try "file,well\na/x.png,B02\nb/x.png,B03\n".write(to: plate.appendingPathComponent("manifest.csv"), atomically: true, encoding: .utf8)
        let db = work.appendingPathComponent("names.sqlite").path
        try plateseg(["submit", plate.path, "--db", db, "--manifest", plate.appendingPathComponent("manifest.csv").path, "--models", "maskrcnn"])
        #expect(try plateseg(["trace", "--db", db, "b/x.png"]).hasPrefix("b/x.png  plate plate  well B03"))
        #expect(try plateseg(["trace", "--db", db, "x.png"], expectStatus: 1).contains("x.png names 2 images (plate: a/x.png, plate: b/x.png)"))
    }

    /// Ctrl-C mid-plate: the summary says the jobs were stopped, not that they wait on failed ones.
    @Test func aStoppedRunSaysItWasStopped() throws {
        let plate = work.appendingPathComponent("plate")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        for (i, source) in ["0f08d640930b", "08f52aa2add3", "1974fbb27dcf", "17754cb5b287", "053d61766edb", "0323e81d23d9"].enumerated() {
            try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/\(source).png"), to: plate.appendingPathComponent("P_B0\(i + 2)_s1.png"))
        }
        let models = work.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("maskrcnn.safetensors"), to: models.appendingPathComponent("maskrcnn.safetensors"))
        let db = work.appendingPathComponent("stop.sqlite").path
        let log = work.appendingPathComponent("run.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let runner = Process()
        runner.executableURL = products.appendingPathComponent("plateseg")
        runner.arguments = ["run", plate.path, "--db", db, "--models", "maskrcnn", "--workers", "1", "--models-dir", models.path, "--intensity", "none"]
        runner.standardOutput = try FileHandle(forWritingTo: log)
        runner.standardError = runner.standardOutput
        try runner.run()
        // Stopped once the first tile is stored: the plate is then surely mid-way.
        while runner.isRunning {
            if let store = try? openJobStore(db, settings: StoreSettings(readOnly: true)),
               let p = try? store.progress(plate: "plate").first, p.succeeded >= 1 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(runner.processIdentifier, SIGINT)
        runner.waitUntilExit()
        let out = try String(contentsOf: log, encoding: .utf8)
        #expect(runner.terminationStatus == 1)
        #expect(out.contains("incomplete: stopped with") && !out.contains("wait on failed ones"), "\(out)")
    }

    /// YOLOX weights saved as maskrcnn.safetensors: the tile jobs fail naming the file and both
    /// networks, and the run does not end "complete".
    @Test func aModelFileOfAnotherNetworkFailsItsJobs() throws {
        let plate = work.appendingPathComponent("plate")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/0f08d640930b.png"), to: plate.appendingPathComponent("P_B02_s1.png"))
        let models = work.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("yolox.safetensors"), to: models.appendingPathComponent("maskrcnn.safetensors"))
        let out = try plateseg(["run", plate.path, "--db", work.appendingPathComponent("m.sqlite").path, "--models", "maskrcnn", "--workers", "1",
                                "--models-dir", models.path, "--intensity", "none"], expectStatus: 1)
        #expect(out.contains("maskrcnn.safetensors holds yolox weights (its metadata says so), not maskrcnn"), "\(out)")
        #expect(out.contains("incomplete") && !out.contains("complete, 1 images"))
    }
}
