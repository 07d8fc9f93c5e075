import Ensemble
import Foundation
import Imaging
import Testing
import JobStore
@_exported import PlateFixtures
import Pipeline
import Worker

/// One 100x80 field with two rectangular cells of `cellType`, its three tile jobs completed with
/// the outputs perfect networks would give, and its merge job queued: a plate as a worker finds
/// it when the merge becomes ready. The store is a real SQLite file.
struct MergeReadyPlate {
    static let width = 100, height = 80
    static let cells = [rect(10, 10, 20, 15), rect(50, 40, 30, 25)]
    static let image = "/plates/P/cells_A01_s1.png"

    let store: any JobStore
    let location: String

    /// `modelHashes`: the content hash each network's tile job records for its model file.
    /// `calibrations`: the int8 ranges' hash a network's tile job records (those run in int8).
    /// `keepTileOutputs`: as a plate submitted with --keep-tile-outputs (for `eval --model` and
    /// `calibrate`); else its merge removes them.
    init(cellType: String = "astro", models: [String] = ["yolox", "maskrcnn", "upernet"], modelHashes: [String: String] = [:],
         calibrations: [String: String] = [:], keepTileOutputs: Bool = true) throws {
        location = temporaryFolder().appendingPathComponent("plate.sqlite").path
        store = try openJobStore(location)
        let tile = PixelRect(x: 0, y: 0, width: Self.width, height: Self.height)
        var jobs = models.map { model in
            NewJob(key: "infer/\(model)", kind: InferJob.kind, imagePath: Self.image,
                   args: InferJob(image: Self.image, contentHash: "h", tile: tile, model: model).jobArgs())
        }
        jobs.append(NewJob(key: "merge", kind: MergeJob.kind, imagePath: Self.image,
                           args: MergeJob(image: Self.image, width: Self.width, height: Self.height).jobArgs(), dependsOn: jobs.map(\.key)))
        _ = try store.submit(PlateSubmission(plate: "P", root: "/plates/P", images: [
            NewImage(path: Self.image, well: "A01", field: 1, width: Self.width, height: Self.height, contentHash: "h")], jobs: jobs,
            keepTileOutputs: keepTileOutputs))
        for _ in models {
            let job = try #require(try store.claim(owner: "test", leaseSeconds: 60))
            let model = try InferJob(jobArgs: job.args).model
            let source = ModelSource(file: "/models/\(model).safetensors", contentHash: modelHashes[model] ?? "fnv1a64:\(model)",
                                     precision: calibrations[model] == nil ? nil : "int8", calibration: calibrations[model])
            try store.complete(job.lease, result: JobResult(artifact: Self.artifact(model, cellType: cellType).encoded(),
                                                            provenance: source.jobArgs()))
        }
    }

    /// What a perfect network of kind `model` outputs for the field's one tile.
    static func artifact(_ model: String, cellType: String) -> TileArtifact {
        let classes = ["shsy5y", "astro", "cort"]
        let hot = classes.map { $0 == cellType ? Float(1) : 0 }
        let tile = PixelRect(x: 0, y: 0, width: width, height: height)
        let boxes = cells.map { m in
            Detection(box: Box(x0: Float(m.box.x), y0: Float(m.box.y), x1: Float(m.box.maxX), y1: Float(m.box.maxY)), score: 0.9,
                      classProbabilities: hot)
        }
        switch model {
        case "yolox":
            return TileArtifact(model: "yolox-s", tile: tile, classes: classes, detections: boxes)
        case "maskrcnn":
            // A rectangle fills its box: the soft mask is 1 everywhere.
            return TileArtifact(model: "maskrcnn_resnet50_fpn", tile: tile, classes: classes, detections: boxes,
                                masks: boxes.map { _ in ProbabilityMap(channels: 1, width: 28, height: 28, probabilities: [Float](repeating: 1, count: 28 * 28)) })
        default:
            var planes = [Float](repeating: 0, count: 4 * tile.area)
            for i in 0..<tile.area { planes[i] = 1 }
            for m in cells {
                for y in m.box.y..<m.box.maxY {
                    for x in m.box.x..<m.box.maxX {
                        planes[y * width + x] = 0
                        for c in 0..<3 { planes[(c + 1) * tile.area + y * width + x] = hot[c] }
                    }
                }
            }
            return TileArtifact(model: "upernet", tile: tile, classes: classes,
                                semantic: ProbabilityMap(channels: 4, width: width, height: height, probabilities: planes))
        }
    }
}

/// A filled rectangle on the 100x80 field.
func rect(_ x: Int, _ y: Int, _ w: Int, _ h: Int) -> Mask {
    Mask(imageWidth: MergeReadyPlate.width, imageHeight: MergeReadyPlate.height, window: PixelRect(x: x, y: y, width: w, height: h),
         bits: [UInt8](repeating: 1, count: w * h))
}

/// Annotations in the competition's CSV form, written to a file.
func truthCSV(_ images: [(id: String, width: Int, height: Int, cellType: String, masks: [Mask])]) throws -> String {
    var lines = ["id,annotation,width,height,cell_type"]
    for image in images {
        for m in image.masks { lines.append("\(image.id),\(KaggleRLE.encode(m)),\(image.width),\(image.height),\(image.cellType)") }
    }
    let path = temporaryFolder().appendingPathComponent("truth.csv").path
    try lines.joined(separator: "\n").appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

extension MergeReadyPlate {
    var mergeJobID: JobID {
        get throws { try #require(try store.images(plate: "P").first?.mergeJobID) }
    }

    /// Claims the merge job and runs it with `handler`, completing it with the result.
    @discardableResult
    func runMerge(_ handler: any JobHandler) throws -> JobResult {
        let job = try #require(try store.claim(owner: "test", leaseSeconds: 60))
        #expect(job.kind == MergeJob.kind)
        let result = try handler.run(job)
        try store.complete(job.lease, result: result)
        return result
    }
}
