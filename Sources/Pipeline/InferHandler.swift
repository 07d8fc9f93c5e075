import Foundation
import Imaging
import JobStore
import Models
import Synchronization
import Worker

/// Runs one network on one tile and stores its output as a compressed tile artifact, with the
/// model file it came from as provenance.
public final class InferHandler: JobHandler {
    private let models: ModelCache
    private let paths: PathMap
    private let host: String
    private let fields = FieldCache()

    public init(models: ModelCache, paths: PathMap = PathMap(), host: String = ProcessInfo.processInfo.hostName) {
        self.models = models
        self.paths = paths
        self.host = host
    }

    public func run(_ job: ClaimedJob) throws -> JobResult {
        try failingAtOnceOnBadInput { try infer(job) }
    }

    private func infer(_ job: ClaimedJob) throws -> JobResult {
        let args: InferJob
        do { args = try InferJob(jobArgs: job.args) } catch {
            throw PermanentJobError("job \(job.id): arguments are not an infer job (\(error))")
        }
        let path = paths.local(args.image)
        let file: FileIdentity
        do { file = try FileIdentity(path) } catch {
            throw ImageNotVisible(host: host, path: path, submittedPath: args.image, reason: "\(error)")
        }
        let rule = args.intensity ?? .none
        let key = FieldCache.Key(path: path, file: file, contentHash: args.contentHash, page: args.page ?? 0,
                                 intensity: rule, scale: args.scale)
        let image = try fields.image(for: key) {
            let bytes: Data
            do { bytes = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw ImageNotVisible(host: host, path: path, submittedPath: args.image, reason: error.localizedDescription)
            }
            guard ContentHash.of(bytes) == args.contentHash else {
                throw PermanentJobError("\(args.image): the file changed since the plate was submitted; put the original back, or submit the changed plate under a new name (--plate)")
            }
            var image = rule.apply(try ImageFile.decode(bytes, name: args.image, page: args.page ?? 0))
            if let factor = args.scale {
                let size = FieldScale(factor: factor).size(width: image.width, height: image.height)
                image = image.resampled(width: size.width, height: size.height)
            }
            return image
        }
        let loaded = try models.model(named: args.model)
        var artifact = try loaded.model.run(image.crop(args.tile))
        artifact.tile = args.tile
        return JobResult(artifact: artifact.encoded(),
                         provenance: InferProvenance(file: loaded.source.file, contentHash: loaded.source.contentHash,
                                                     intensity: rule.description, precision: loaded.source.precision).jobArgs())
    }
}

/// What a tile result was made from: the model file, and how the field's intensities were
/// brought to the networks' (`ModelSource` reads the first two back).
public struct InferProvenance: Codable, Sendable, Equatable {
    public var file: String
    public var contentHash: String
    public var intensity: String
    /// What the network computed in (absent: fp32).
    public var precision: String?
}

/// Where a loaded network came from.
public struct ModelSource: Codable, Sendable, Equatable {
    public var file: String
    public var contentHash: String
    /// What it computes in (absent: fp32).
    public var precision: String?
    /// In int8: the content hash of the calibrated ranges it ran with (`<network>.int8.json`).
    public var calibration: String?

    public init(file: String, contentHash: String, precision: String? = nil, calibration: String? = nil) {
        self.file = file
        self.contentHash = contentHash
        self.precision = precision
        self.calibration = calibration
    }
}

/// Loaded networks, one per name, shared by the worker's threads.
public final class ModelCache: Sendable {
    private let loader: @Sendable (String) throws -> (model: any Model, source: ModelSource)
    private let loaded = Mutex<[String: (model: any Model, source: ModelSource)]>([:])

    /// `loader` maps a model name (as in the job) to a loaded network and its file, or throws.
    public init(loader: @escaping @Sendable (String) throws -> (model: any Model, source: ModelSource)) {
        self.loader = loader
    }

    /// Loads under the lock, so that threads asking for the same network load it once.
    public func model(named name: String) throws -> (model: any Model, source: ModelSource) {
        try loaded.withLock { cache in
            if let m = cache[name] { return m }
            let m: (model: any Model, source: ModelSource)
            do { m = try loader(name) } catch let e as PermanentJobError {
                throw e
            } catch {
                throw PermanentJobError("model \(name): \(error)")
            }
            cache[name] = m
            return m
        }
    }
}

/// A worker could not read an image that the plate lists. Another host may see it: the attempt
/// fails with the reason and the job is tried again (perhaps elsewhere) after its back-off.
public struct ImageNotVisible: Error, CustomStringConvertible {
    public let host: String
    public let path: String
    public let submittedPath: String
    public let reason: String

    public var description: String {
        let mapped = path == submittedPath ? "" : " (mapped from \(submittedPath))"
        return "host \(host) cannot read \(path)\(mapped): \(reason); every worker host must see the plate's images at the path they were submitted with (a shared filesystem such as NFS, Lustre or GPFS), or map it with `plateseg worker --path-map FROM=TO`"
    }
}

/// Bad input (a damaged image, a damaged tile output) fails its job at once: another attempt
/// would read the same bytes.
func failingAtOnceOnBadInput<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ImagingError { throw PermanentJobError("\(error)") }
}
