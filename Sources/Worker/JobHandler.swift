import JobStore

/// What a finished job leaves: an artifact (already compressed) and, for a merge, the image's cells.
public struct JobOutput: Sendable {
    public var artifact: [UInt8]?
    public var cells: [CellRecord]?

    public init(artifact: [UInt8]? = nil, cells: [CellRecord]? = nil) {
        self.artifact = artifact
        self.cells = cells
    }
}

/// Runs one kind of job. Called from one worker thread at a time per handler instance.
public protocol JobHandler: Sendable {
    func run(_ job: ClaimedJob) throws -> JobOutput
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
