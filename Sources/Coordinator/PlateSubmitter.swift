import Foundation
import Imaging
import JobStore

/// Turns a plate folder into its job graph: per readable image, one `infer` job per
/// (tile, model) and one `merge` job that waits on all of them.
public struct PlateSubmitter: Sendable {
    public var layout: TileLayout
    public var models: [String]
    public var maxAttempts: Int

    public init(layout: TileLayout, models: [String], maxAttempts: Int = 3) {
        self.layout = layout
        self.models = models
        self.maxAttempts = maxAttempts
    }

    public func submission(plate: String, folder: String, images: [NewImage]) -> PlateSubmission {
        var jobs: [NewJob] = []
        for image in images where image.error == nil {
            var inferKeys: [String] = []
            for tile in layout.tiles(width: image.width, height: image.height) {
                for model in models {
                    let key = "\(InferJob.kind)/\(plate)/\(image.path)/\(tile)/\(model)"
                    inferKeys.append(key)
                    jobs.append(NewJob(key: key, kind: InferJob.kind, imagePath: image.path,
                                       args: InferJob(image: image.path, contentHash: image.contentHash, tile: tile, model: model).jobArgs(),
                                       maxAttempts: maxAttempts))
                }
            }
            jobs.append(NewJob(key: "\(MergeJob.kind)/\(plate)/\(image.path)", kind: MergeJob.kind, imagePath: image.path,
                               args: MergeJob(image: image.path, width: image.width, height: image.height).jobArgs(),
                               dependsOn: inferKeys, maxAttempts: maxAttempts))
        }
        return PlateSubmission(plate: plate, root: folder, settings: settings, images: images, jobs: jobs)
    }

    /// What decides the job graph; a plate keeps the settings it was first submitted with.
    public var settings: String {
        "tiles \(layout.size) px overlapping \(layout.overlap) px, networks \(models.joined(separator: ","))"
    }

    /// Scans `folder` and writes what is new in one transaction; submitting again adds nothing.
    public func submit(folder: String, plate: String? = nil, manifest: Manifest? = nil, to store: any JobStore) throws -> SubmitSummary {
        let root = URL(fileURLWithPath: folder).standardizedFileURL
        let images = try PlateScanner(manifest: manifest).scan(folder: root.path)
        let name = plate ?? root.lastPathComponent
        return try store.submit(submission(plate: name, folder: root.path, images: images))
    }
}
