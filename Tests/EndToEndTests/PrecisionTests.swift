import Foundation
import Imaging
import PlateFixtures
import Testing

/// `--precision` as a user meets it: `auto` says what it chose, and each tile records what its
/// network computed in.
@Suite struct PrecisionTests {
    @Test func aWorkerLeftToChooseSaysWhichPrecisionAndWhy() throws {
        let db = temporaryFolder().appendingPathComponent("jobs.sqlite").path
        _ = try run(products.appendingPathComponent("plateseg"), ["submit", demo.appendingPathComponent("plate").path, "--db", db,
                                                                  "--manifest", demo.appendingPathComponent("plate/manifest.csv").path,
                                                                  "--models", "yolox", "--intensity", "none"])
        let out = try run(products.appendingPathComponent("plateseg"), ["worker", "--db", db, "--exit-when-drained", "--once",
                                                                        "--models-dir", fixtures.path])
        #expect(out.firstMatch(of: /networks run in (fp32|bf16) \(auto: the fastest that [a-z0-9_]+ runs natively(, int8 where its calibration is validated)?\)/) != nil, "\(out)")
        for wrong in ["fp64", "bf16,fp32", "upernet=int4"] {
            let refused = try run(products.appendingPathComponent("plateseg"), ["worker", "--db", db, "--precision", wrong], expectStatus: 64)
            #expect(refused.contains("The value '\(wrong)' is invalid for '--precision"), "\(refused)")
        }
    }

    @Test func int8WithoutCalibrationFailsTheJobsSayingWhatToRun() throws {
        let work = temporaryFolder()
        let plate = work.appendingPathComponent("plate")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/08f52aa2add3.png"), to: plate.appendingPathComponent("P1_C02_s1.png"))
        let db = work.appendingPathComponent("plate.sqlite").path
        _ = try run(products.appendingPathComponent("plateseg"), ["run", plate.path, "--db", db, "--workers", "1", "--models", "yolox",
                                                                  "--intensity", "none", "--precision", "int8", "--models-dir", fixtures.path],
                    expectStatus: 1)
        let status = try run(products.appendingPathComponent("plateseg"), ["status", "--db", db])
        #expect(status.contains("has no int8 calibration beside it") && status.contains("plateseg calibrate-int8"), "\(status)")
    }

    /// An exception for one network reaches the workers `run` starts: that network's jobs load it
    /// in its own precision (here int8 without calibration, so they fail saying so) while the
    /// other network's run in the precision for all.
    @Test func oneNetworkCanRunInAPrecisionOfItsOwn() throws {
        let work = temporaryFolder()
        let plate = work.appendingPathComponent("plate")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/08f52aa2add3.png"), to: plate.appendingPathComponent("P1_C02_s1.png"))
        let db = work.appendingPathComponent("plate.sqlite").path
        let out = try run(products.appendingPathComponent("plateseg"), ["run", plate.path, "--db", db, "--workers", "1", "--models", "yolox,upernet",
                                                                        "--intensity", "none", "--precision", "fp32,upernet=int8", "--models-dir", fixtures.path],
                          expectStatus: 1)
        #expect(out.contains("networks in upernet int8, yolox fp32"), "\(out)")
        let trace = try run(products.appendingPathComponent("plateseg"), ["trace", "--db", db, "P1_C02_s1.png"])
        #expect(trace.contains("\"precision\":\"fp32\""), "\(trace)")
        let status = try run(products.appendingPathComponent("plateseg"), ["status", "--db", db])
        #expect(status.contains("upernet.safetensors: has no int8 calibration beside it"), "\(status)")
    }

    @Test func eachTileRecordsThePrecisionItsNetworkRanIn() throws {
        let work = temporaryFolder()
        let plate = work.appendingPathComponent("plate")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/08f52aa2add3.png"), to: plate.appendingPathComponent("P1_C02_s1.png"))
        let db = work.appendingPathComponent("plate.sqlite").path
        let out = try run(products.appendingPathComponent("plateseg"), ["run", plate.path, "--db", db, "--workers", "1", "--models", "yolox",
                                                                        "--intensity", "none", "--precision", "fp32", "--models-dir", fixtures.path])
        #expect(out.contains("networks in fp32\n"), "\(out)")
        let trace = try run(products.appendingPathComponent("plateseg"), ["trace", "--db", db, "P1_C02_s1.png"])
        #expect(trace.contains("\"precision\":\"fp32\""), "\(trace)")
    }
}

/// `calibrate-int8` on images of the training split: a ranges file per network (each
/// convolution's input and output ranges, or with `--inputs-only` its inputs'), naming the
/// images and the model file it belongs to.
@Suite struct CalibrateInt8Tests {
    @Test func theRangesOfEveryNetworkAreWrittenWithTheImagesAndTheModelFile() throws {
        let work = temporaryFolder()
        let models = work.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        for name in ["yolox", "maskrcnn", "upernet"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(name).safetensors"), to: models.appendingPathComponent("\(name).safetensors"))
        }
        try FileManager.default.copyItem(at: intensityReference, to: models.appendingPathComponent("intensity.json"))
        let list = work.appendingPathComponent("images.csv")
        try "id,split\n0f08d640930b,train\n08f52aa2add3,train\n0323e81d23d9,val\n".write(to: list, atomically: true, encoding: .utf8)
        let plate = demo.appendingPathComponent("plate").path
        let out = try run(products.appendingPathComponent("plateseg"), ["calibrate-int8", plate, "--list", list.path, "--models-dir", models.path])
        #expect(out.contains("maskrcnn: ") && out.contains("from 2 images of split train"), "\(out)")
        for name in ["yolox", "maskrcnn", "upernet"] {
            let file = models.appendingPathComponent("\(name).int8.json")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
            #expect(json["images"] as? [String] == ["08f52aa2add3.png", "0f08d640930b.png"], "never the val image")
            #expect(json["modelFile"] as? String == ContentHash.of(try Data(contentsOf: models.appendingPathComponent("\(name).safetensors"))))
            #expect(((json["layers"] as? [String: Any])?.count ?? 0) > 5)
            #expect(((json["outputs"] as? [String: Any])?.count ?? 0) > 5, "what each convolution writes")
        }
        _ = try run(products.appendingPathComponent("plateseg"), ["calibrate-int8", plate, "--list", list.path, "--models-dir", models.path,
                                                                   "--networks", "upernet", "--inputs-only"])
        let inputsOnly = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: models.appendingPathComponent("upernet.int8.json"))) as? [String: Any])
        #expect(((inputsOnly["layers"] as? [String: Any])?.count ?? 0) > 5)
        #expect(((inputsOnly["outputs"] as? [String: Any])?.count ?? 0) == 0, "--inputs-only: layers keep bf16 between them")
        let none = try run(products.appendingPathComponent("plateseg"), ["calibrate-int8", plate, "--list", list.path, "--split", "test",
                                                                         "--models-dir", models.path], expectStatus: 64)
        #expect(none.contains("no image in \(plate) is in split test"))
    }
}
