import Foundation
import Imaging
import Testing
@testable import Models

/// The parity fixtures written by training/parity/make_fixtures.py: small random-weight networks
/// and what PyTorch computed with them on a crop of a shipped demo image.
enum Fixture {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ name: String) -> String { "\(directory)/\(name)" }

    struct Expected {
        let file: SafeTensorsFile
        let crop: PixelRect
        let image: String

        func values(_ name: String) throws -> [Float] {
            let shape = try #require(file.entries[name], "expected output \(name) missing").shape
            return try file.floats(name, shape: shape)
        }

        func shape(_ name: String) throws -> [Int] {
            try #require(file.entries[name], "expected output \(name) missing").shape
        }

        func tile() throws -> GrayImage {
            let path = image.hasPrefix("/") ? image : repository.appendingPathComponent(image).path
            return try PNGCodec.readGray(path).crop(crop)
        }
    }

    static func expected(_ arch: String) throws -> Expected {
        try expected(at: path("\(arch).expected.safetensors"))
    }

    /// An expected-output file: the outputs, and in its metadata the image (repository-relative
    /// or absolute) and the crop of it the network ran on.
    static func expected(at path: String) throws -> Expected {
        let file = try SafeTensorsFile(path: path)
        let info = try #require(file.metadata["plateseg"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any])
        let c = try #require(json["crop"] as? [Int])
        return Expected(file: file, crop: PixelRect(x: c[0], y: c[1], width: c[2], height: c[3]),
                        image: try #require(json["image"] as? String))
    }

    static func model(_ arch: String) throws -> any Model {
        try ModelLoader.load(path: path("\(arch).safetensors"))
    }

    /// A copy of fixture network `arch`, written to a temporary file `name` (its path returned):
    /// its plateseg metadata changed by `edit`, each tensor named with one of `factors`' prefixes
    /// multiplied by that factor.
    static func variant(of arch: String, as name: String, factors: [String: Float] = [:],
                        edit: (inout [String: Any]) -> Void) throws -> String {
        let file = try SafeTensorsFile(path: path("\(arch).safetensors"))
        var b = SafeTensorsBuilder()
        for tensor in file.entries.keys.sorted() {
            let e = file.entries[tensor]!
            let factor = factors.first { tensor.hasPrefix($0.key) }?.value ?? 1
            b.add(tensor, f32: try file.floats(tensor, shape: e.shape).map { $0 * factor }, shape: e.shape)
        }
        let info = try #require(file.metadata["plateseg"])
        var meta = try #require(JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any])
        edit(&meta)
        b.metadata = ["plateseg": String(decoding: try JSONSerialization.data(withJSONObject: meta), as: UTF8.self)]
        return try b.write(name)
    }

    /// Expects loading `path` to fail with bad metadata naming the file and `field`.
    static func expectRefused(_ path: String, naming field: String) {
        #expect { try ModelLoader.load(path: path) } throws: { e in
            guard case let ModelError.badMetadata(file, reason) = e else { return false }
            return file == path && reason.contains(field)
        }
    }
}

/// Largest absolute difference, relative to the largest magnitude of the reference.
func relativeError(_ got: [Float], _ want: [Float]) -> Float {
    precondition(got.count == want.count)
    let scale = want.reduce(Float(0)) { max($0, abs($1)) }
    let err = zip(got, want).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
    return scale > 0 ? err / scale : err
}

func expectClose(_ got: [Float], _ want: [Float], tolerance: Float = 1e-3, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, "\(what): \(got.count) values, expected \(want.count)", sourceLocation: sourceLocation)
    guard got.count == want.count else { return }
    let e = relativeError(got, want)
    #expect(e <= tolerance, "\(what): relative error \(e)", sourceLocation: sourceLocation)
}

/// Same detections in the same order: boxes with IoU > 0.99, same label, close scores and class
/// probabilities.
func expectSameDetections(_ got: [Detection], _ expected: Fixture.Expected, checkProbabilities: Bool = true,
                          sourceLocation: SourceLocation = #_sourceLocation) throws {
    let boxes = try expected.values("boxes"), scores = try expected.values("scores")
    let labels = try expected.values("labels"), probs = try expected.values("probabilities")
    let count = scores.count
    #expect(count > 5, "the fixture should hold a real number of detections", sourceLocation: sourceLocation)
    #expect(got.count == count, "\(got.count) detections, PyTorch has \(count)", sourceLocation: sourceLocation)
    let classes = probs.count / max(count, 1)
    func box(_ i: Int) -> Box { Box(x0: boxes[4 * i], y0: boxes[4 * i + 1], x1: boxes[4 * i + 2], y1: boxes[4 * i + 3]) }
    for k in 0..<min(count, got.count) {
        let d = got[k]
        // Scores equal to float precision (random weights make a few) may come in either order:
        // match within such a tie, preferring the same position.
        let tie = (0..<count).filter { abs(scores[$0] - scores[k]) <= 1e-5 }
        let i = d.box.iou(box(k)) > 0.99 ? k : (tie.max { d.box.iou(box($0)) < d.box.iou(box($1)) } ?? k)
        let want = box(i)
        #expect(d.box.iou(want) > 0.99, "detection \(i): box \(d.box) vs \(want)", sourceLocation: sourceLocation)
        #expect(abs(d.score - scores[i]) <= 1e-3 * max(1, scores[i]), "detection \(i): score \(d.score) vs \(scores[i])", sourceLocation: sourceLocation)
        #expect(d.label == Int(labels[i]), "detection \(i): label \(d.label) vs \(labels[i])", sourceLocation: sourceLocation)
        let p = Array(probs[(i * classes)..<((i + 1) * classes)])
        #expect(!checkProbabilities || zip(d.classProbabilities, p).allSatisfy { abs($0 - $1) < 1e-3 }, "detection \(i): probabilities \(d.classProbabilities) vs \(p)",
                sourceLocation: sourceLocation)
    }
}

/// Mask R-CNN detections with their box masks against the fixture's `prefix.*` values, in order:
/// box corners within `boxTolerance` px (the fixture's random network makes boxes a fraction of a
/// pixel wide, where an IoU tolerance means nothing), scores, labels and mask probabilities.
func expectSameBoxMasked(_ found: BoxMaskedDetections, _ expected: Fixture.Expected, _ prefix: String,
                         boxTolerance: Float = 2e-3, maskTolerance: Float = 1e-3,
                         sourceLocation: SourceLocation = #_sourceLocation) throws {
    let boxes = try expected.values("\(prefix).boxes"), scores = try expected.values("\(prefix).scores")
    let labels = try expected.values("\(prefix).labels"), masks = try expected.values("\(prefix).masks")
    #expect(found.detections.count == scores.count, sourceLocation: sourceLocation)
    for (i, d) in found.detections.enumerated() where i < scores.count {
        let want = [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]]
        let close = zip([d.box.x0, d.box.y0, d.box.x1, d.box.y1], want).allSatisfy { abs($0 - $1) < boxTolerance }
        #expect(close && abs(d.score - scores[i]) < 1e-4 && d.label == Int(labels[i]),
                "detection \(i): box \([d.box.x0, d.box.y0, d.box.x1, d.box.y1]) score \(d.score) label \(d.label), PyTorch \(want) \(scores[i]) \(Int(labels[i]))",
                sourceLocation: sourceLocation)
    }
    let got = found.masks.flatMap { $0 }
    #expect(got.count == masks.count, sourceLocation: sourceLocation)
    let worst = zip(got, masks).map { abs($0 - $1) }.max() ?? 0
    #expect(worst < maskTolerance, "largest mask difference \(worst)", sourceLocation: sourceLocation)
}

/// The pixels at which two semantic maps of the same size give the same most probable class.
func pixelsOfTheSameClass(_ a: ProbabilityMap, _ b: ProbabilityMap) -> Int {
    let plane = a.width * a.height
    var same = 0
    for i in 0..<plane {
        let ca = (0..<a.channels).max { a.values[$0 * plane + i] < a.values[$1 * plane + i] }
        let cb = (0..<b.channels).max { b.values[$0 * plane + i] < b.values[$1 * plane + i] }
        same += ca == cb ? 1 : 0
    }
    return same
}
