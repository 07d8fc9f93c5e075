import Foundation
import Synchronization
import Testing
@testable import Models

/// Networks on several threads of one process (`plateseg worker --concurrency`, parallel tests):
/// a layer in reduced precision gives the same numbers every time, whatever the other threads
/// do. Reading a bf16 or int8 output went through a float32 copy that could be released while
/// it was read, its buffer handed by the pool to another thread: a bf16 layer's outputs changed
/// in nearly every run of this test.
@Suite struct ThreadedPrecisionTests {
    static let reduced = [Precision.bf16, .int8].filter(\.isNative)

    static func values(_ count: Int, _ salt: Double) -> [Float] { (0..<count).map { Float(sin(Double($0) * 12.9898 + salt)) } }

    @Test(.enabled(if: !reduced.isEmpty, "this processor runs neither bf16 nor int8 natively"), arguments: reduced)
    func aLayerGivesTheSameNumbersWhileOtherThreadsRunLayers(_ precision: Precision) throws {
        let n = 128, h = 64, w = 80
        let input = Self.values(n * h * w, 3).map { $0 * 2 }
        let range = LayerRange(minimum: input.min()!, bound: input.map(abs).max()!)
        let changed = Atomic<Int>(0), failures = Mutex<[String]>([])
        let threads = 4, runs = 25
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let conv = try Conv2D(weights: Self.values(n * n * 9, Double(t)).map { $0 * 0.1 }, bias: Self.values(n, 2), inChannels: n, outChannels: n,
                                          kernel: 3, padding: 1, postOps: [.relu], precision: precision, range: range)
                    let x = try Tensor(shape: [1, n, h, w], nchw: input)
                    let first = try conv(x).nchw()
                    for _ in 0..<runs where try conv(x).nchw() != first { changed.add(1, ordering: .relaxed) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }.start()
        }
        group.wait()
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(changed.load(ordering: .relaxed) == 0, "\(changed.load(ordering: .relaxed)) of \(threads * runs) runs gave other numbers")
    }
}
