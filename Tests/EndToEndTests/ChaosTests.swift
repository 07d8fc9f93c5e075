import Foundation
import PlateFixtures
import Testing

/// The short chaos run of `make test` (the long one is `make chaos`): six real fields, worker
/// processes SIGKILLed at random, the coordinator killed mid-submit and mid-run. Nothing may be
/// lost or doubled. The server is not crashed here, where other suites' plates share it; that
/// has its own test (`WorkerProcessTests.postgresRestartedMidPlateLosesAndDuplicatesNothing`).
@Suite(.serialized) struct ChaosTests {
    @Test(arguments: Driver.allCases)
    func aPlateUnderChaosGivesTheUndisturbedCells(driver: Driver) throws {
        let work = temporaryFolder("plateseg-chaos")
        let plate = work.appendingPathComponent("plate")
        let models = work.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        for (i, source) in ["0f08d640930b", "08f52aa2add3", "0323e81d23d9", "1974fbb27dcf", "17754cb5b287", "053d61766edb"].enumerated() {
            try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/\(source).png"),
                                             to: plate.appendingPathComponent("P1_\(["B", "C", "D"][i % 3])0\(2 + i / 3)_s1.png"))
        }
        for name in ["yolox", "maskrcnn", "upernet"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(name).safetensors"), to: models.appendingPathComponent("\(name).safetensors"))
        }
        for name in ["intensity.json", "ensemble.json"] {
            try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("models/\(name)"), to: models.appendingPathComponent(name))
        }
        let plan = ChaosPlan(seed: 7, workerKills: 6, databaseRestarts: 0, killInterval: 0.3...1.0, timeoutSeconds: 300)
        let chaos = ChaosRun(plateseg: products.appendingPathComponent("plateseg"), plate: plate, models: models, plan: plan)
        let outcome = try chaos.run(db: try driver.freshLocation(), reference: try driver.freshLocation(), scratch: work)
        print("chaos on \(driver):\n\(outcome)")
        #expect(outcome.problems.isEmpty, "\(outcome)")
        #expect(outcome.workerKills == plan.workerKills, "the plate outlasted the kills planned: \(outcome)")
        #expect(outcome.coordinatorKills == 2)
        #expect(outcome.jobs == 24 && outcome.cells > 0)
    }
}
