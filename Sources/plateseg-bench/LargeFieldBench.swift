import ArgumentParser
import CTIFF
import Foundation
import Imaging
import PlateFixtures

/// A plate of large 16-bit fields made from real images, as an instrument with a big camera
/// writes them: each field a mosaic of 704x520 fields, cropped square, stored as a camera
/// would (gain and offset, 16 bits, LZW), named ImageXpress-style by well and site.
struct LargePlateBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "large-plate",
                                                    abstract: "Write a plate of large 16-bit TIFF fields made from a folder of 8-bit PNG fields.")

    @Option(help: "Folder of 8-bit PNG fields.") var from = "demo/plate"
    @Option(help: "Output plate folder.") var out = "out/large-plate"
    @Option(help: "Fields to write.") var fields = 16
    @Option(help: "Side of a field in pixels.") var size = 2048

    func run() throws {
        let sources = try FileManager.default.contentsOfDirectory(atPath: from).filter { $0.hasSuffix(".png") }.sorted()
            .map { try PNGCodec.readGray("\(from)/\($0)") }
        guard let first = sources.first else { throw ValidationError("\(from): no PNG fields") }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let columns = (size + first.width - 1) / first.width, rows = (size + first.height - 1) / first.height
        for f in 0..<fields {
            var samples = [UInt16](repeating: 0, count: size * size)
            for y in 0..<size {
                for x in 0..<size {
                    let piece = sources[(f * 7 + (y / first.height) * columns + x / first.width) % sources.count]
                    // A camera's gain and offset: the 8-bit range spread over 10,455 of 65,536 levels.
                    samples[y * size + x] = UInt16(Int(piece[x % first.width, y % first.height]) * 41 + 7000)
                }
            }
            let well = "B0\(2 + f / 4)", site = f % 4 + 1
            let bytes = samples.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
            try TIFFWriter(bits: 16, compression: COMPRESSION_LZW).write([bytes], width: size, height: size,
                                                                         to: "\(out)/LARGE_\(well)_s\(site)_w1.tif")
        }
        print("\(out): \(fields) fields of \(size)x\(size), 16-bit LZW TIFF, each a mosaic of \(columns)x\(rows) fields of \(from)")
    }
}

/// What reading a field costs before any network runs: decoding the file and bringing it to the
/// networks' intensities, per field, median of several passes.
struct ReadingBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reading",
                                                    abstract: "Decode and intensity-normalisation time per field of a plate folder.")

    @Argument(help: "Plate folder.") var plateFolder: String
    @Option(help: "The intensity reference (--intensity auto).") var reference = "models/intensity.json"
    @Option(help: "Passes over the folder.") var passes = 5

    func run() throws {
        let rule = IntensityRule.matched(try IntensityReference.load(path: reference))
        let files = try FileManager.default.contentsOfDirectory(atPath: plateFolder).filter(ImageFile.isImageName).sorted()
        guard !files.isEmpty else { throw ValidationError("\(plateFolder): no images") }
        var decode: [Double] = [], normalise: [Double] = []
        var pixels = 0
        for _ in 0..<passes {
            var d = 0.0, n = 0.0
            for name in files {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let samples = try ImageFile.read("\(plateFolder)/\(name)")
                let t1 = DispatchTime.now().uptimeNanoseconds
                let gray = rule.apply(samples)
                let t2 = DispatchTime.now().uptimeNanoseconds
                pixels = gray.width * gray.height
                d += Double(t1 - t0) / 1e9
                n += Double(t2 - t1) / 1e9
            }
            decode.append(d / Double(files.count))
            normalise.append(n / Double(files.count))
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        print(String(format: "%d fields of %d pixels, %d passes: decode %.1f ms, normalise %.1f ms per field (medians)",
                     files.count, pixels, passes, median(decode) * 1000, median(normalise) * 1000))
    }
}
