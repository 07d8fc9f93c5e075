import Dispatch

/// `body(0..<count)` on every core, results in index order. The fit scores each candidate config
/// on every validation image, and the images are independent.
public func concurrentMap<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
    let slots = ResultSlots<T>(count)
    DispatchQueue.concurrentPerform(iterations: count) { slots.store(body($0), at: $0) }
    return slots.values
}

/// Raw memory rather than an array: each slot is initialised by exactly one iteration, and an
/// array's copy-on-write check would have the iterations share its buffer's header. Only
/// `concurrentMap` makes one, and every slot is stored before it reads or frees them.
private final class ResultSlots<T>: @unchecked Sendable {
    private let base: UnsafeMutablePointer<T>
    private let count: Int

    init(_ count: Int) {
        self.count = count
        base = .allocate(capacity: count)
    }

    func store(_ value: T, at index: Int) { (base + index).initialize(to: value) }

    var values: [T] { Array(UnsafeBufferPointer(start: base, count: count)) }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }
}
