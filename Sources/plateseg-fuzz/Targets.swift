import Coordinator
import Ensemble
import Foundation
import Imaging
import JobStore
import Models

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
            _ = try? KaggleRLE.decode(text, width: width, height: height)
        },
        "coco-rle": { data in
            guard let (width, height, text) = sized(data) else { return }
            _ = try? COCORLE(compressed: text, width: width, height: height).mask()
        },
        "manifest": { data in
            _ = try? Manifest(path: scratch(data, "manifest.csv"))
        },
        "truth-csv": { _ = try? GroundTruth.parseCSV(String(decoding: $0, as: UTF8.self), file: "fuzz.csv") },
        "truth-coco": { _ = try? GroundTruth.parseCOCO($0, file: "fuzz.json") },
        "ensemble-json": { data in
            _ = try? EnsembleConfig.load(path: scratch(data, "ensemble.json"))
        },
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
