import Foundation
import Imaging
import JobStore
import Models
import Synchronization

/// Runs one network on one tile and stores its output as a compressed tile artifact.
public final class InferHandler: JobHandler {
    private let models: ModelCache

    public init(models: ModelCache) {
        self.models = models
    }

    public func run(_ job: ClaimedJob) throws -> JobOutput {
        let args: InferJob
        do { args = try InferJob(jobArgs: job.args) } catch {
            throw PermanentJobError("job \(job.id): arguments are not an infer job (\(error))")
        }
        let image = try PNGCodec.readGray(args.image)
        guard args.tile.maxX <= image.width, args.tile.maxY <= image.height else {
            throw PermanentJobError("\(args.image): is \(image.width)x\(image.height) now, but tile \(args.tile) was cut from a larger image; the file changed since submission — submit the plate again")
        }
        let model = try models.model(named: args.model)
        var artifact = try model.run(image.crop(args.tile))
        artifact.tile = args.tile
        return JobOutput(artifact: artifact.encoded())
    }
}

/// Loaded networks, one per name, shared by the worker's threads.
public final class ModelCache: Sendable {
    private let loader: @Sendable (String) throws -> any Model
    private let loaded = Mutex<[String: any Model]>([:])

    /// `loader` maps a model name (as in the job) to a loaded network, or throws.
    public init(loader: @escaping @Sendable (String) throws -> any Model) {
        self.loader = loader
    }

    public func model(named name: String) throws -> any Model {
        if let m = loaded.withLock({ $0[name] }) { return m }
        let m: any Model
        do { m = try loader(name) } catch {
            throw PermanentJobError("model \(name): \(error)")
        }
        loaded.withLock { $0[name] = m }
        return m
    }
}
