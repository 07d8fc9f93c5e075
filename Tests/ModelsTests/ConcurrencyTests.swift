import Dispatch
import Foundation
import Imaging
import Testing
@testable import Models

@Suite struct ConcurrencyTests {
    /// Workers share one loaded model across threads; results must not depend on what else runs.
    @Test func oneModelRunsOnSeveralThreadsAtOnce() throws {
        let expected = try Fixture.expected("yolox")
        let model = try Fixture.model("yolox")
        let tile = try expected.tile()
        let reference = try model.run(tile)
        let results = ResultBox(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            results.set(i, Result { try model.run(tile) })
        }
        for r in results.all { #expect(try r.get() == reference) }
    }

    /// Separate models, loaded and first run (primitive creation, weight packing) concurrently.
    @Test func freshModelsRunConcurrently() throws {
        let expected = try Fixture.expected("yolox")
        let tile = try expected.tile()
        let reference = try Fixture.model("yolox").run(tile)
        let results = ResultBox(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            results.set(i, Result { try (i % 2 == 0 ? Fixture.model("yolox") : Fixture.model("upernet")).run(tile) })
        }
        for (i, r) in results.all.enumerated() where i % 2 == 0 { #expect(try r.get() == reference) }
    }
}

final class ResultBox: @unchecked Sendable {
    private var values: [Result<TileArtifact, any Error>?]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ v: Result<TileArtifact, any Error>) { lock.lock(); values[i] = v; lock.unlock() }
    var all: [Result<TileArtifact, any Error>] { values.compactMap { $0 } }
}
