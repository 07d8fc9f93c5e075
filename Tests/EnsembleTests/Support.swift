import Foundation
import Imaging
import Testing
@testable import Ensemble

/// The repository root, found from this file's path, for the committed demo data.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let demoTruthPath = repoRoot.appendingPathComponent("demo/truth.csv").path
func demoImagePath(_ id: String) -> String { repoRoot.appendingPathComponent("demo/plate/\(id).png").path }

struct Reference: Decodable {
    struct Metric: Decodable {
        var images: [String: Double]
        var overall: Double
    }
    struct Coco: Decodable {
        var image: String
        var first_masks: [String]
    }
    var metric: Metric
    var coco: Coco

    static func load() throws -> Reference {
        let url = try #require(Bundle.module.url(forResource: "reference", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }
}

/// A filled rectangle on a `width` x `height` image.
func rect(_ x: Int, _ y: Int, _ w: Int, _ h: Int, image: (Int, Int) = (100, 100)) -> Mask {
    Mask(imageWidth: image.0, imageHeight: image.1, window: PixelRect(x: x, y: y, width: w, height: h),
         bits: [UInt8](repeating: 1, count: w * h))
}

/// A filled disc of radius r around (cx, cy) (pixel centres).
func disc(_ cx: Double, _ cy: Double, _ r: Double, image: (Int, Int)) -> Mask {
    let x0 = Int((cx - r).rounded(.down)), y0 = Int((cy - r).rounded(.down))
    let n = Int((2 * r).rounded(.up)) + 2
    var bits = [UInt8](repeating: 0, count: n * n)
    for y in 0..<n {
        for x in 0..<n {
            let dx = Double(x0 + x) + 0.5 - cx, dy = Double(y0 + y) + 0.5 - cy
            if dx * dx + dy * dy <= r * r { bits[y * n + x] = 1 }
        }
    }
    return Mask(imageWidth: image.0, imageHeight: image.1, window: PixelRect(x: x0, y: y0, width: n, height: n), bits: bits)
}

/// The same mask moved by (dx, dy); pixels pushed off the image are lost.
func shifted(_ m: Mask, dx: Int, dy: Int) -> Mask {
    Mask(imageWidth: m.imageWidth, imageHeight: m.imageHeight,
         window: PixelRect(x: m.box.x + dx, y: m.box.y + dy, width: m.box.width, height: m.box.height), bits: m.bits)
}

/// Simulated network outputs that describe `masks` exactly, one artifact per tile and model:
/// what each model would emit if it were perfect, seen through the real tiling.
enum PerfectModels {
    static let classes = ["shsy5y", "astro", "cort"]

    static func oneHot(_ cellType: String) -> [Float] { classes.map { $0 == cellType ? 1 : 0 } }

    /// The part of `mask` inside `tile`, as a detection in tile coordinates with a soft mask.
    static func detection(_ mask: Mask, tile: PixelRect, score: Float, cellType: String, maskSize: Int = 28)
        -> (Detection, ProbabilityMap)? {
        let b = mask.box
        let x0 = max(b.x, tile.x), y0 = max(b.y, tile.y), x1 = min(b.maxX, tile.maxX), y1 = min(b.maxY, tile.maxY)
        guard x1 > x0, y1 > y0 else { return nil }
        var area = 0
        for y in y0..<y1 { for x in x0..<x1 where mask[x, y] { area += 1 } }
        guard area > 0 else { return nil }
        let box = Box(x0: Float(x0 - tile.x), y0: Float(y0 - tile.y), x1: Float(x1 - tile.x), y1: Float(y1 - tile.y))
        // Each soft-mask cell is the covered fraction of the image pixels under it (box filter).
        var values = [Float](repeating: 0, count: maskSize * maskSize)
        let w = Double(x1 - x0), h = Double(y1 - y0)
        for j in 0..<maskSize {
            for i in 0..<maskSize {
                let cx = Double(x0) + (Double(i) + 0.5) * w / Double(maskSize)
                let cy = Double(y0) + (Double(j) + 0.5) * h / Double(maskSize)
                values[j * maskSize + i] = mask[Int(cx), Int(cy)] ? 1 : 0
            }
        }
        return (Detection(box: box, score: score, classProbabilities: oneHot(cellType)),
                ProbabilityMap(channels: 1, width: maskSize, height: maskSize, probabilities: values))
    }

    static func artifacts(masks: [Mask], cellType: String, width: Int, height: Int,
                          layout: TileLayout = TileLayout(size: 384, overlap: 96)) -> [TileArtifact] {
        var out: [TileArtifact] = []
        var union = [UInt8](repeating: 0, count: width * height)
        for m in masks { for (i, v) in m.imagePixels().enumerated() where v != 0 { union[i] = 1 } }
        let hot = oneHot(cellType)
        for tile in layout.tiles(width: width, height: height) {
            var dets: [Detection] = [], soft: [ProbabilityMap] = [], boxes: [Detection] = []
            for m in masks {
                guard let (d, s) = detection(m, tile: tile, score: 0.9, cellType: cellType) else { continue }
                dets.append(d)
                soft.append(s)
                boxes.append(Detection(box: d.box, score: 0.8, classProbabilities: d.classProbabilities))
            }
            out.append(TileArtifact(model: "maskrcnn_resnet50_fpn", tile: tile, classes: classes, detections: dets, masks: soft))
            out.append(TileArtifact(model: "yolox-s", tile: tile, classes: classes, detections: boxes))
            var planes = [Float](repeating: 0, count: 4 * tile.area)
            for y in 0..<tile.height {
                for x in 0..<tile.width {
                    let fg = Float(union[(tile.y + y) * width + tile.x + x])
                    planes[y * tile.width + x] = 1 - fg
                    for c in 0..<3 { planes[(c + 1) * tile.area + y * tile.width + x] = fg * hot[c] }
                }
            }
            out.append(TileArtifact(model: "upernet", tile: tile, classes: classes,
                                    semantic: ProbabilityMap(channels: 4, width: tile.width, height: tile.height, probabilities: planes)))
        }
        return out
    }
}
