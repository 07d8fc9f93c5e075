import JobStore

/// Runs one kind of job. Called from one worker thread at a time per handler instance.
public protocol JobHandler: Sendable {
    func run(_ job: ClaimedJob) throws -> JobResult
}

/// An error that retrying cannot fix (bad input, a missing model file): the job fails at once
/// with this message, and `plateseg retry` runs it again once the cause is fixed.
public struct PermanentJobError: Error, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
