import ArgumentParser
import Foundation
import PlateFixtures

/// `make chaos`: a plate of real fields run undisturbed, then again while worker processes are
/// SIGKILLed at random, the coordinator is killed mid-submit and mid-run, and (on PostgreSQL) the
/// server crashes; the figures of docs/reliability.md.
struct ChaosBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "A plate under random SIGKILLs and database crashes, compared with an undisturbed run.",
        discussion: "PostgreSQL runs too when PLATESEG_TEST_POSTGRES and PLATESEG_TEST_PGCTL are set (ops/postgres/test-server.sh sets them).")

    @Option(help: "Seed of the kills' moments and victims.") var seed: UInt64 = 1
    @Option(help: "Worker processes to SIGKILL.") var kills = 100
    @Option(help: "PostgreSQL server crashes (pg_ctl restart -m immediate).") var restarts = 2
    @Option(help: "Fields in the plate (demo images, repeated under other wells when more than 12).") var images = 48
    @Option(help: "Least and most seconds between two kills.") var interval = "0.5,2.5"
    @Option(help: "Worker processes per coordinator.") var workers = 2
    @Option(help: "Folder with the model files, intensity.json and ensemble.json.") var modelsDir = "models"

    func run() throws {
        let products = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let work = temporaryFolder("plateseg-chaos")
        defer { try? FileManager.default.removeItem(at: work) }
        let plate = work.appendingPathComponent("plate")
        try FileManager.default.createDirectory(at: plate, withIntermediateDirectories: true)
        let demo = URL(fileURLWithPath: "demo/plate")
        let sources = try FileManager.default.contentsOfDirectory(atPath: demo.path).filter { $0.hasSuffix(".png") }.sorted()
        guard !sources.isEmpty else { throw ValidationError("no demo images in \(demo.path): run from the repository root") }
        let rows = Array("BCDEFG")
        for i in 0..<images {
            let well = "\(rows[i / 10 % rows.count])\(String(format: "%02d", 2 + i % 10))"
            try FileManager.default.copyItem(at: demo.appendingPathComponent(sources[i % sources.count]),
                                             to: plate.appendingPathComponent("CHAOS_\(well)_s\(1 + i / 60).png"))
        }
        var drivers: [Driver] = [.sqlite]
        if ProcessInfo.processInfo.environment["PLATESEG_TEST_POSTGRES"] != nil { drivers.append(.postgres) }
        for driver in drivers {
            let bounds = interval.split(separator: ",").compactMap { Double($0) }
            guard bounds.count == 2, bounds[0] > 0, bounds[0] <= bounds[1] else { throw ValidationError("--interval \(interval): give LEAST,MOST seconds") }
            let plan = ChaosPlan(seed: seed, workerKills: kills, databaseRestarts: driver == .postgres ? restarts : 0, workers: workers,
                                 killInterval: bounds[0]...bounds[1])
            say("## \(driver.rawValue): \(images) fields, \(workers) workers, seed \(seed)")
            let chaos = ChaosRun(plateseg: products.appendingPathComponent("plateseg"), plate: plate,
                                 models: URL(fileURLWithPath: modelsDir), plan: plan) { say("  \($0)") }
            let outcome = try chaos.run(db: try driver.freshLocation(), reference: try driver.freshLocation(), scratch: work)
            say(outcome)
            if outcome.workerKills < kills { say("note: the plate was complete after \(outcome.workerKills) of \(kills) kills; give more --images") }
            if !outcome.problems.isEmpty { throw ExitCode(1) }
        }
    }
}

/// Unbuffered, so that a long run shows its progress when its output goes to a file.
private func say(_ line: Any) {
    FileHandle.standardOutput.write(Data("\(line)\n".utf8))
}
