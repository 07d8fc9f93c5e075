import Foundation
import JobStore
import PlateFixtures
import Testing
import Worker

/// `plateseg run`'s supervisor replaces a dead worker at most `maxRestarts` times within its
/// window, measured on the clock it is given.
@Suite struct WorkerSupervisorTests {
    /// Workers that die at once (exit 3) die at 0 s, 100 s and `third`: two are replaced; the
    /// third only once the first replacement has left the 600-second window.
    @Test(arguments: [(200.0, false), (700.0, true)])
    func deathsAreReplacedWithinTheBudgetOfTheWindow(third: Double, replaced: Bool) throws {
        let store = try Driver.sqlite.makeStore()
        let clock = ManualClock(0)
        let supervisor = try WorkerSupervisor(executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "exit 3"],
                                              environment: [:], workers: 1, maxRestarts: 2, window: 600, clock: clock)
        func nextDeath(at time: Double) throws -> [String] {
            clock.advance(by: time - clock.now)
            try waitUntil { !supervisor.anyRunning }
            return try supervisor.check(store)
        }
        for time in [0.0, 100] {
            let lines = try nextDeath(at: time)
            #expect(lines.count == 1 && lines[0].contains("exited with status 3, holding no job; started process"), "\(lines)")
        }
        let lines = try nextDeath(at: third)
        #expect(lines.count == 1)
        if replaced {
            #expect(lines[0].hasSuffix("in its place"), "\(lines)")
        } else {
            #expect(lines[0].hasSuffix("not replaced: 2 workers died within 10 minutes") && !supervisor.anyRunning, "\(lines)")
        }
        #expect(supervisor.deaths == 3)
        supervisor.stop()
    }

    /// A killed coordinator's workers are nobody's children: the next coordinator on the host
    /// gives back the leases of those that are gone at once, and only theirs.
    @Test func leasesOfThisHostsGoneWorkersAreGivenBackAtOnce() throws {
        let store = try Driver.sqlite.makeStore()
        let jobs = (0..<3).map { NewJob(key: "hold\($0)", kind: "hold", imagePath: nil, args: "{}") }
        _ = try store.submit(PlateSubmission(plate: "P1", root: "/P1", images: [], jobs: jobs))
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let host = WorkerOwner.host
        let orphan = try #require(try store.claim(owner: "\(host):\(gone.processIdentifier):0", leaseSeconds: 3600))
        let living = try #require(try store.claim(owner: "\(host):\(getpid()):0", leaseSeconds: 3600))
        let elsewhere = try #require(try store.claim(owner: "another-host:\(gone.processIdentifier):0", leaseSeconds: 3600))
        let supervisor = try WorkerSupervisor(executable: URL(fileURLWithPath: "/bin/sleep"), arguments: ["60"], environment: [:], workers: 1)
        defer { supervisor.stop() }
        let lines = try supervisor.check(store)
        #expect(lines == ["worker process \(gone.processIdentifier) of this host is gone, holding job \(orphan.id), queued again at once"])
        let states = Dictionary(uniqueKeysWithValues: try store.jobs(plate: "P1").map { ($0.id, $0.state) })
        #expect(states[orphan.id] == .queued && states[living.id] == .running && states[elsewhere.id] == .running, "\(states)")
        #expect(try supervisor.check(store).isEmpty, "given back once")
    }
}
