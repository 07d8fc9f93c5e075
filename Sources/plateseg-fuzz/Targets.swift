import Coordinator
import Ensemble
import Foundation
import Imaging
import JobStore
import Models
import Pipeline

/// Every parser that reads bytes from outside the program, each as a function of one input.
/// Errors are the expected answer to bad bytes; a crash, a hang or a sanitizer report is a bug.
enum FuzzTargets {
    static let all: [String: @Sendable (Data) -> Void] = [
        "png": image,
        "tiff": image,
        "safetensors": safetensors,
        "artifact": { _ = try? TileArtifact.decode([UInt8]($0), name: "fuzz") },
        // Behind the zstd frame, which refuses nearly every mutation of a stored artifact.
        "artifact-payload": { _ = try? TileArtifact.decode(Zstd.compress([UInt8]($0), level: 1), name: "fuzz") },
        "kaggle-rle": { data in
            guard let (width, height, text) = sized(data) else { return }
            // Large images only make bitmaps larger, not the parser different.
            guard width.multipliedReportingOverflow(by: height).partialValue <= 1 << 16 || width <= 0 || height <= 0 else { return }
            _ = try? KaggleRLE.decode(text, width: width, height: height)
        },
        "coco-rle": { data in
            guard let (width, height, text) = sized(data) else { return }
            _ = try? COCORLE(compressed: text, width: width, height: height).mask()
        },
        "manifest": { data in
            _ = try? Manifest(path: scratch(data, "manifest.csv"))
        },
        "truth-csv": { data in
            let text = String(decoding: data, as: UTF8.self)
            // As for `kaggle-rle`: rows of images up to 256 pixels a side (the seeds' cells), so
            // that an execution parses rather than fills a field-sized bitmap.
            guard !text.split(whereSeparator: { $0 == "," || $0.isNewline }).contains(where: { Int($0).map { $0 > 256 } ?? false }) else { return }
            _ = try? GroundTruth.parseCSV(text, file: "fuzz.csv")
        },
        "truth-coco": { _ = try? GroundTruth.parseCOCO($0, file: "fuzz.json") },
        "ensemble-json": { data in
            _ = try? EnsembleConfig.load(path: scratch(data, "ensemble.json"))
        },
        "int8-ranges": int8Ranges,
        "truth-names": truthNames,
        "names": { data in
            let name = String(decoding: data, as: UTF8.self)
            _ = ImageIdentity.parse(relativePath: name)
            _ = ImageIdentity.isThumbnail(fileName: name)
            _ = TimePoint(parsing: name)
        },
    ]

    /// PNG and TIFF go through the one entry point the coordinator and the workers use.
    static func image(_ data: Data) {
        guard let header = try? ImageFile.header(of: data, name: "fuzz") else { return }
        for page in 0..<min(header.pages, 2) { _ = try? ImageFile.decode(data, name: "fuzz", page: page) }
    }

    /// A model file is memory-mapped from a path; each tensor is then read in full.
    static func safetensors(_ data: Data) {
        guard let file = try? SafeTensorsFile(path: scratch(data, "model.safetensors")) else { return }
        let weights = Weights(file: file)
        for (name, entry) in file.entries { _ = try? weights.tensor(name, shape: entry.shape) }
    }

    /// A ranges file that is accepted gives every layer a usable int8 scale.
    static func int8Ranges(_ data: Data) {
        guard let ranges = try? ActivationRanges.decode(data, file: "fuzz.int8.json") else { return }
        for (layer, range) in ranges.layers.merging(ranges.outputs, uniquingKeysWith: { a, _ in a }) {
            let scale = (range.minimum >= 0 ? 255 : 127) / max(range.bound, 1e-6)
            precondition(scale.isFinite && scale > 0, "layer \(layer): range \(range) accepted with int8 scale \(scale)")
        }
    }

    /// Lines "PLATE PATH" (paths under /plates/PLATE), "--", then ids as a truth file gives them:
    /// an id names only images it is a name of (path, path in the plate folder with or without
    /// extension, bare file name), and one image at most or an error.
    static func truthNames(_ data: Data) {
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let split = lines.firstIndex(of: "--") ?? lines.endIndex
        var images: [StoredImage] = []
        for line in lines[..<split] {
            guard let space = line.firstIndex(of: " ") else { continue }
            let plate = String(line[..<space]), path = "/plates/\(plate)/\(line[line.index(after: space)...])"
            images.append(StoredImage(id: Int64(images.count), plate: plate, path: path, well: nil, field: nil, width: 1, height: 1, contentHash: ""))
        }
        let plates = Set(images.map(\.plate)).map { PlateInfo(name: $0, root: "/plates/\($0)", settings: "", keepTileOutputs: false, created: 0) }
        let names = ImageNames(images, plates: plates)
        for id in lines[split...].dropFirst().map(String.init) {
            let found = names.images(named: id)
            for image in found {
                let relative = names.name(of: image), file = PathName.file(relative)
                // Repeated slashes are one: a name given either way names the image.
                let forms = [image.path, relative, PathName.withoutExtension(relative), file, PathName.withoutExtension(file)].map(PathName.normalized)
                precondition(forms.contains(PathName.normalized(id)), "\(id) named \(image.path), which it is no name of")
            }
            switch Result(catching: { try names.image(named: id) }) {
            case .success(let one): precondition(found.count <= 1 && one?.id == found.first?.id, "\(id): \(found.count) images, one given")
            case .failure: precondition(found.count > 1, "\(id) refused though it names \(found.count) image(s)")
            }
        }
    }

    /// "WIDTH HEIGHT\n" and then the encoding, as a truth file gives them together.
    static func sized(_ data: Data) -> (Int, Int, Substring)? {
        let text = String(decoding: data, as: UTF8.self)
        guard let newline = text.firstIndex(of: "\n") else { return nil }
        let size = text[..<newline].split(separator: " ").compactMap { Int($0) }
        guard size.count == 2 else { return nil }
        return (size[0], size[1], text[text.index(after: newline)...])
    }

    /// Parsers that take a path read the input from a file of this process's own.
    static func scratch(_ data: Data, _ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-fuzz-\(getpid())-\(name)").path
        _ = FileManager.default.createFile(atPath: path, contents: data)
        return path
    }
}
