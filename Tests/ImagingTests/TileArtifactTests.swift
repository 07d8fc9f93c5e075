import Foundation
import Imaging
import Testing

@Suite struct TileArtifactTests {
    func sample() throws -> TileArtifact {
        // A semantic map shaped like real data: smooth probabilities derived from a real image.
        let image = try PNGCodec.readGray(demoImage)
        let probs = image.pixels.map { Float($0) / 255 }
        let semantic = ProbabilityMap(channels: 2, width: 704, height: 520, probabilities: probs + probs.map { 1 - $0 })
        let detections = [
            Detection(box: Box(x0: 1.5, y0: 2, x1: 30, y1: 40.25), score: 0.9, classProbabilities: [0.7, 0.2, 0.1]),
            Detection(box: Box(x0: 100, y0: 50, x1: 120, y1: 61), score: 0.4, classProbabilities: [0.1, 0.1, 0.8]),
        ]
        let masks = (0..<2).map { i in ProbabilityMap(channels: 1, width: 28, height: 28, values: (0..<784).map { UInt8(($0 * (i + 3)) % 256) }) }
        return TileArtifact(model: "maskrcnn", tile: PixelRect(x: 0, y: 0, width: 704, height: 520),
                            classes: ["shsy5y", "astro", "cort"], detections: detections, masks: masks, semantic: semantic)
    }

    @Test func roundTrips() throws {
        let a = try sample()
        #expect(try TileArtifact.decode(a.encoded(), name: "t") == a)
        let empty = TileArtifact(model: "yolox", tile: PixelRect(x: 5, y: 6, width: 7, height: 8), classes: ["a"])
        #expect(try TileArtifact.decode(empty.encoded(), name: "e") == empty)
    }

    @Test func smoothMapsCompressWellAndRoundTrip() throws {
        // Network outputs are smooth: soft blobs where cells are, falling off over a few pixels.
        let w = 704, h = 520
        var probs = [Float](repeating: 0, count: w * h)
        var seed: UInt64 = 42
        for _ in 0..<150 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let cx = Float((seed >> 40) % 704), cy = Float((seed >> 20) % 520), r = Float(6 + (seed >> 8) % 14)
            for y in max(0, Int(cy - r * 2))..<min(h, Int(cy + r * 2)) {
                for x in max(0, Int(cx - r * 2))..<min(w, Int(cx + r * 2)) {
                    let d = ((Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)).squareRoot()
                    probs[y * w + x] = max(probs[y * w + x], 1 / (1 + exp((d - r) / 1.5)))
                }
            }
        }
        let map = ProbabilityMap(channels: 1, width: w, height: h, probabilities: probs)
        let artifact = TileArtifact(model: "upernet", tile: PixelRect(x: 0, y: 0, width: w, height: h), classes: [], semantic: map)
        let encoded = artifact.encoded()
        #expect(encoded.count < map.values.count / 8)
        #expect(try TileArtifact.decode(encoded, name: "smooth").semantic == map)
    }

    @Test func damagedArtifactIsAnErrorNamingIt() throws {
        var bytes = try sample().encoded()
        #expect(throws: ImagingError.self) { try TileArtifact.decode(Array(bytes.prefix(bytes.count / 2)), name: "job 7") }
        bytes[bytes.count / 2] ^= 0xFF
        let error = try #require(throws: ImagingError.self) { try TileArtifact.decode(bytes, name: "job 7") }
        #expect(error.description.contains("artifact job 7"))
        #expect(throws: ImagingError.self) { try TileArtifact.decode(Zstd.compress(Array("PSA1xxxx".utf8)), name: "x") }
    }

    /// Found by fuzzing: a 16-byte frame declaring almost 4 GB was allocated before zstd looked
    /// at it. Refused from the declared size now.
    @Test func aFrameDeclaringGigabytesIsRefusedBeforeAllocating() throws {
        let path = repositoryRoot.appendingPathComponent("Fuzz/regressions/artifact/declares-four-gigabytes.zst").path
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let error = try #require(throws: ImagingError.self) { try TileArtifact.decode(bytes, name: "job 9") }
        #expect(error.description.contains("more than any tile needs"), "\(error)")
    }

    @Test func quantizationIsWithinHalfAStep() {
        for p in stride(from: Float(0), through: 1, by: 0.001) {
            #expect(abs(Float(ProbabilityMap.quantize(p)) / 255 - p) <= 0.5 / 255 + 1e-6)
        }
    }
}
