import Foundation
import Imaging
import JobStore

/// Turns a plate folder into its job graph: per readable image, one `infer` job per
/// (tile, model) and one `merge` job that waits on all of them.
public struct PlateSubmitter: Sendable {
    public var layout: TileLayout
    public var models: [String]
    public var maxAttempts: Int
    /// How every field of the plate is brought to the networks' intensities.
    public var intensity: IntensityRule
    /// The channel segmented when fields have several.
    public var channel: String?
    /// Fields are resized by this to the networks' pixel size (`--pixel-size`); nil: as they are.
    public var scale: FieldScale?
    /// Tile outputs stay after their merge (`eval --model`, `calibrate`); else the merge removes them.
    public var keepTileOutputs: Bool

    public init(layout: TileLayout, models: [String], maxAttempts: Int = 3, intensity: IntensityRule = .none, channel: String? = nil,
                scale: FieldScale? = nil, keepTileOutputs: Bool = false) {
        self.scale = scale
        self.keepTileOutputs = keepTileOutputs
        self.layout = layout
        self.models = models
        self.maxAttempts = maxAttempts
        self.intensity = intensity
        self.channel = channel
    }

    public func submission(plate: String, folder: String, images: [NewImage]) -> PlateSubmission {
        var jobs: [NewJob] = []
        for image in images where image.error == nil && image.segmented {
            var inferKeys: [String] = []
            let (width, height) = scale?.size(width: image.width, height: image.height) ?? (image.width, image.height)
            for tile in layout.tiles(width: width, height: height) {
                for model in models {
                    let key = "\(InferJob.kind)/\(plate)/\(image.path)/\(tile)/\(model)"
                    inferKeys.append(key)
                    jobs.append(NewJob(key: key, kind: InferJob.kind, imagePath: image.path,
                                       args: InferJob(image: image.path, contentHash: image.contentHash, tile: tile, model: model,
                                                     intensity: intensity, page: image.page, scale: scale?.factor).jobArgs(),
                                       maxAttempts: maxAttempts))
                }
            }
            jobs.append(NewJob(key: "\(MergeJob.kind)/\(plate)/\(image.path)", kind: MergeJob.kind, imagePath: image.path,
                               args: MergeJob(image: image.path, width: width, height: height,
                                              fieldWidth: scale.map { _ in image.width }, fieldHeight: scale.map { _ in image.height }).jobArgs(),
                               dependsOn: inferKeys, maxAttempts: maxAttempts))
        }
        return PlateSubmission(plate: plate, root: folder, settings: settings, images: images, jobs: jobs, keepTileOutputs: keepTileOutputs)
    }

    /// What decides the job graph; a plate keeps the settings it was first submitted with.
    public var settings: String {
        "tiles \(layout.size) px overlapping \(layout.overlap) px, networks \(models.joined(separator: ",")), intensity \(intensity)"
            + (channel.map { ", channel \($0)" } ?? "")
            + (scale.map { ", fields resized by \($0.factor) to the networks' pixel size" } ?? "")
    }

    /// Scans `folder` and writes what is new in one transaction; submitting again adds nothing.
    /// A folder scanned later (the plate's next time point) is submitted under the same plate
    /// name, with `timepoint` when its names carry none.
    public func submit(folder: String, plate: String? = nil, manifest: Manifest? = nil, timepoint: TimePoint? = nil,
                       to store: any JobStore) throws -> SubmitSummary {
        let root = URL(fileURLWithPath: folder).standardizedFileURL
        let name = plate ?? root.lastPathComponent
        let known = try store.images(plate: name)
        let scanned = try PlateScanner(manifest: manifest, channel: channel, timepoint: timepoint,
                                       known: Dictionary(known.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })).scan(folder: root.path)
        let rows = manifest.map { m in Dictionary(uniqueKeysWithValues: m.rows.map { (root.path + "/" + $0.key, $0.value) }) } ?? [:]
        let images = Self.refusingDuplicates(scanned, known: known, manifestRows: rows, manifest: manifest?.path)
        var summary = try store.submit(submission(plate: name, folder: root.path, images: images))
        for image in images where image.error == nil && image.segmented {
            let (width, height) = scale?.size(width: image.width, height: image.height) ?? (image.width, image.height)
            let tiles = layout.tiles(width: width, height: height).count
            if tiles > 1 {
                summary.tiledFields += 1
                summary.tilesOfTiledFields += tiles
            }
        }
        summary.networks = models.count
        let before = Dictionary(known.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        summary.changedFiles = images.compactMap { image in
            guard image.segmented, let old = before[image.path], old.error == nil, old.segmented,
                  image.error != nil || image.contentHash != old.contentHash else { return nil }
            return relativePath(of: image.path, in: root.path)
        }
        return summary
    }

    private func relativePath(of path: String, in root: String) -> String {
        path.hasPrefix(root + "/") ? String(path.dropFirst(root.count + 1)) : path
    }

    /// Two files with one identity (well, field, time point, channel, plane) would count the same
    /// cells twice: most often a later scan submitted without its time point. The later file is
    /// recorded as an error naming the earlier one, and the rest of the plate goes on.
    /// Two files a manifest places at one well and field are a mistake in its rows, which are named.
    static func refusingDuplicates(_ images: [NewImage], known: [StoredImage], manifestRows: [String: Int] = [:],
                                   manifest: String? = nil) -> [NewImage] {
        struct Key: Hashable {
            var well: String, field: Int?, timepoint: String?, channel: String?, plane: Int?
        }
        var owner: [Key: String] = [:]
        for image in known where image.error == nil && image.segmented {
            guard let well = image.well else { continue }
            owner[Key(well: well, field: image.field, timepoint: image.timepoint?.label, channel: image.channel, plane: image.plane)] = image.path
        }
        return images.map { image in
            guard image.error == nil, image.segmented, let well = image.well else { return image }
            let key = Key(well: well, field: image.field, timepoint: image.timepoint?.label, channel: image.channel, plane: image.plane)
            if let other = owner[key], other != image.path {
                var refused = image
                let place = "well \(well), field \(image.field.map(String.init) ?? "-"), time point \(image.timepoint?.label ?? "-") and channel \(image.channel ?? "-")"
                if let manifest, let first = manifestRows[other], let second = manifestRows[image.path] {
                    refused.error = "\(manifest) rows \(first) and \(second) place \(PathName.file(other)) and \(PathName.file(image.path)) at one \(place); correct one of the rows and submit again"
                } else {
                    refused.error = "\(image.path): same \(place) as \(other); give each scan its own time point (submit --timepoint N, or a manifest `timepoint` column)"
                }
                return refused
            }
            owner[key] = image.path
            return image
        }
    }
}
