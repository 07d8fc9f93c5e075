import ArgumentParser
import Ensemble
import Foundation
import Imaging

/// Times the merge of one image: the artifacts the three networks would store for it (built
/// from its annotations, one per tile and model, through the real tiling and zstd encoding),
/// decoded and merged `runs` times; prints the median.
struct MergeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Time the ensemble merge of one annotated image.")

    @Option(help: "Truth file (competition CSV or COCO json).")
    var truth = "demo/truth.csv"
    @Option(help: "Image id in the truth file; default: the one whose cell count is closest to 300.")
    var image: String?
    @Option(help: "Timed runs (after one warm-up).")
    var runs = 9
    @Option(help: "Tile size in pixels.")
    var tile = 384
    @Option(help: "Tile overlap in pixels.")
    var overlap = 96
    @Flag(help: "Also time one weight fit over every image of the truth file.")
    var fit = false

    func run() throws {
        let loaded = try GroundTruth.read(path: truth)
        let found = image.map { id in loaded.images.first { $0.id == id } }
            ?? loaded.images.min { abs($0.masks.count - 300) < abs($1.masks.count - 300) }
        guard let picked = found else {
            throw ValidationError("\(truth): no annotated image \(image ?? "")")
        }
        let classes = EnsembleConfig().classes
        let stored = SimulatedOutputs.artifacts(of: picked, classes: classes, layout: TileLayout(size: tile, overlap: overlap))
            .map { $0.encoded() }
        let merger = Merger()
        var decodeAndMerge: [Double] = [], mergeOnly: [Double] = []
        var instances = 0
        for run in 0...max(1, runs) {
            let clock = ContinuousClock()
            let t0 = clock.now
            let artifacts = try stored.enumerated().map { try TileArtifact.decode($0.element, name: "tile \($0.offset)") }
            let t1 = clock.now
            let merged = try merger.merge(image: picked.id, width: picked.width, height: picked.height, artifacts: artifacts)
            let t2 = clock.now
            instances = merged.instances.count
            if run > 0 {
                decodeAndMerge.append(seconds(t2 - t0))
                mergeOnly.append(seconds(t2 - t1))
            }
        }
        print("merge \(picked.id) \(picked.width)x\(picked.height), \(picked.masks.count) true cells, \(stored.count) artifacts "
              + "(\(stored.map(\.count).reduce(0, +) / 1024) KiB stored), \(instances) instances, \(decodeAndMerge.count) runs")
        print(String(format: "  merge only:        median %.1f ms (min %.1f, max %.1f)",
                     median(mergeOnly) * 1000, mergeOnly.min()! * 1000, mergeOnly.max()! * 1000))
        print(String(format: "  decode + merge:    median %.1f ms (min %.1f, max %.1f)",
                     median(decodeAndMerge) * 1000, decodeAndMerge.min()! * 1000, decodeAndMerge.max()! * 1000))
        if fit { try timeFit(loaded.images, classes: classes) }
    }

    private func timeFit(_ images: [TruthImage], classes: [String]) throws {
        let layout = TileLayout(size: tile, overlap: overlap)
        let split = images.map {
            CalibrationImage(image: $0.id, width: $0.width, height: $0.height,
                             artifacts: SimulatedOutputs.artifacts(of: $0, classes: classes, layout: layout), truth: $0.masks)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let fitted = try WeightFitter().fit(split, split: truth)
        let elapsed = seconds(clock.now - start)
        print(String(format: "fit over %d images: %.1f s, score %.4f (start %.4f)",
                     split.count, elapsed, fitted.fit?.score ?? 0, fitted.fit?.startScore ?? 0))
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    private func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// What the three networks would emit for an annotated image, tile by tile: Mask R-CNN boxes
/// with 28x28 soft masks, YOLOX boxes, UPerNet foreground/class maps.
enum SimulatedOutputs {
    static func artifacts(of image: TruthImage, classes: [String], layout: TileLayout) -> [TileArtifact] {
        let (w, h) = (image.width, image.height)
        let hot = classes.map { Float($0 == image.cellType ? 1 : 0) }
        var union = [UInt8](repeating: 0, count: w * h)
        for m in image.masks {
            for y in 0..<m.box.height {
                for x in 0..<m.box.width where m.bits[y * m.box.width + x] != 0 { union[(m.box.y + y) * w + m.box.x + x] = 1 }
            }
        }
        var out: [TileArtifact] = []
        for tile in layout.tiles(width: w, height: h) {
            var dets: [Detection] = [], soft: [ProbabilityMap] = [], boxes: [Detection] = []
            for m in image.masks {
                let x0 = max(m.box.x, tile.x), y0 = max(m.box.y, tile.y)
                let x1 = min(m.box.maxX, tile.maxX), y1 = min(m.box.maxY, tile.maxY)
                guard x1 > x0, y1 > y0 else { continue }
                let n = 28
                var values = [UInt8](repeating: 0, count: n * n)
                for j in 0..<n {
                    for i in 0..<n {
                        let px = x0 + (i * (x1 - x0)) / n, py = y0 + (j * (y1 - y0)) / n
                        values[j * n + i] = m[px, py] ? 230 : 10
                    }
                }
                let box = Box(x0: Float(x0 - tile.x), y0: Float(y0 - tile.y), x1: Float(x1 - tile.x), y1: Float(y1 - tile.y))
                dets.append(Detection(box: box, score: 0.9, classProbabilities: hot))
                soft.append(ProbabilityMap(channels: 1, width: n, height: n, values: values))
                boxes.append(Detection(box: box.offsetBy(dx: 1, dy: -1), score: 0.8, classProbabilities: hot))
            }
            out.append(TileArtifact(model: "maskrcnn", tile: tile, classes: classes, detections: dets, masks: soft))
            out.append(TileArtifact(model: "yolox", tile: tile, classes: classes, detections: boxes))
            let plane = tile.area
            var values = [UInt8](repeating: 0, count: (classes.count + 1) * plane)
            for y in 0..<tile.height {
                for x in 0..<tile.width {
                    let fg = union[(tile.y + y) * w + tile.x + x] != 0
                    values[y * tile.width + x] = fg ? 25 : 230
                    for c in classes.indices where hot[c] > 0 { values[(c + 1) * plane + y * tile.width + x] = fg ? 230 : 25 }
                }
            }
            out.append(TileArtifact(model: "upernet", tile: tile, classes: classes,
                                    semantic: ProbabilityMap(channels: classes.count + 1, width: tile.width, height: tile.height, values: values)))
        }
        return out
    }
}
