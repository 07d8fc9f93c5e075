import Foundation
import PlatesegTestSupport
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
        #expect(out.firstMatch(of: /networks run in (fp32|bf16) \(auto: the fastest that [a-z0-9_]+ runs natively\)/) != nil, "\(out)")
        let refused = try run(products.appendingPathComponent("plateseg"), ["worker", "--db", db, "--precision", "fp64"], expectStatus: 64)
        #expect(refused.contains("'fp32', 'bf16' or 'auto'"))
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
