import Foundation
import Imaging
import Testing
@testable import Models

/// The engine against PyTorch on the shipped weights and whole validation images, from the files
/// `training/parity/shipped.py` writes (they need ../shared/data, so this suite runs only when
/// PLATESEG_PARITY_DIR names them). Trained networks make near-ties at score and NMS thresholds
/// that float rounding may tip, so detections are matched one to one rather than by position.
@Suite(.enabled(if: ShippedParity.directory != nil, "set PLATESEG_PARITY_DIR (training/parity/shipped.py)"))
struct ShippedParityTests {
    @Test(arguments: ShippedParity.cases) func engineReproducesPyTorch(_ expectedFile: String) throws {
        let dir = try #require(ShippedParity.directory)
        let expected = try Fixture.expected(at: "\(dir)/\(expectedFile)")
        let arch = String(expectedFile.prefix { $0 != "-" })
        let model = try ModelLoader.load(path: "\(dir)/\(arch).safetensors")
        let tile = try expected.tile()
        let artifact = try model.run(tile)
        switch model.kind {
        case .yolox, .maskrcnn:
            let boxes = try expected.values("boxes"), scores = try expected.values("scores")
            let pairs = ShippedParity.match(artifact.detections, boxes: boxes, scores: scores)
            let share = Double(pairs.count) / Double(max(1, scores.count))
            print("\(expectedFile): \(artifact.detections.count) detections, PyTorch \(scores.count), \(pairs.count) matched (IoU > 0.99, score within 1e-3)")
            #expect(scores.count > 5, "a real image should give a real number of detections")
            #expect(abs(artifact.detections.count - scores.count) <= max(1, scores.count / 100))
            #expect(share >= 0.99, "\(pairs.count) of \(scores.count) detections matched")
            if model.kind == .maskrcnn {
                let want = try expected.values("masks")
                var agree = 0, total = 0
                for (mine, theirs) in pairs {
                    let got = artifact.masks[mine].values
                    for k in 0..<got.count {
                        agree += (Float(got[k]) / 255 >= 0.5) == (want[theirs * got.count + k] >= 0.5) ? 1 : 0
                    }
                    total += got.count
                }
                print("\(expectedFile): mask pixels agreeing at 0.5: \(agree) of \(total)")
                #expect(Double(agree) / Double(max(1, total)) > 0.999)
            }
        case .upernet:
            let semantic = try #require(artifact.semantic)
            let want = ProbabilityMap(channels: semantic.channels, width: tile.width, height: tile.height,
                                      probabilities: try expected.values("probabilities"))
            #expect(semantic.values.count == want.values.count)
            let off = zip(semantic.values, want.values).filter { abs(Int($0) - Int($1)) > 1 }.count
            let plane = tile.width * tile.height
            let sameClass = pixelsOfTheSameClass(semantic, want)
            print("\(expectedFile): 8-bit probabilities off by more than one step: \(off) of \(want.values.count); same class at \(sameClass) of \(plane) pixels")
            #expect(Double(off) / Double(want.values.count) < 1e-4)
            #expect(Double(sameClass) / Double(plane) > 0.999)
        }
    }
}

enum ShippedParity {
    static let directory = ProcessInfo.processInfo.environment["PLATESEG_PARITY_DIR"].map {
        $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0
    }

    static var cases: [String] {
        guard let directory, let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { $0.hasSuffix(".expected.safetensors") }.sorted()
    }

    /// One-to-one pairs (engine index, PyTorch index): each PyTorch detection, in order, takes the
    /// unmatched engine detection of highest IoU when that is above 0.99 with a score within 1e-3.
    static func match(_ got: [Detection], boxes: [Float], scores: [Float]) -> [(Int, Int)] {
        var used = Set<Int>(), pairs: [(Int, Int)] = []
        for i in scores.indices {
            let want = Box(x0: boxes[4 * i], y0: boxes[4 * i + 1], x1: boxes[4 * i + 2], y1: boxes[4 * i + 3])
            let best = got.indices.filter { !used.contains($0) && abs(got[$0].score - scores[i]) <= 1e-3 }
                .max { got[$0].box.iou(want) < got[$1].box.iou(want) }
            if let best, got[best].box.iou(want) > 0.99 {
                used.insert(best)
                pairs.append((best, i))
            }
        }
        return pairs
    }
}
