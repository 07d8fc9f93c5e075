/// Measurements for benchmarks: how much arithmetic a network did.
public enum Profiling {
    /// Runs `body` and returns its result with the floating-point operations that the
    /// convolutions, transposed convolutions and fully connected layers did on this thread.
    public static func countingFlops<T>(_ body: () throws -> T) rethrows -> (T, flops: Double) {
        _ = FlopCounter.reset()
        let r = try body()
        return (r, FlopCounter.reset())
    }

    /// Frees the activation buffers kept for reuse between runs (they are held up to the largest
    /// run's working set, at most 2 GiB), e.g. before measuring another network's peak memory.
    public static func releaseCachedBuffers() {
        BufferPool.shared.drain()
    }
}
