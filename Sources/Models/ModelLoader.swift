import Foundation
import Imaging

/// Opens a weights file exported by training/archs/export.py and builds the network its metadata
/// names (`arch`), with the hyper-parameters the metadata carries.
public enum ModelLoader {
    /// `precision`: what the network's layers run in. `expected`: the network the caller runs the
    /// file as; a file of another one is refused (its outputs would be stored as that network's).
    public static func load(path: String, precision: Precision = .fp32, as expected: ModelKind? = nil) throws -> any Model {
        let file = try SafeTensorsFile(path: path)
        let calibration = precision == .int8 ? try int8Ranges(of: path) : nil
        let weights = Weights(file: file, prefix: "", precision: precision, ranges: calibration?.int8Layers ?? [:],
                              outputRanges: calibration?.outputs ?? [:])
        let json = try metadataJSON(file)
        let settings = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any]
        guard let arch = settings?["arch"] as? String else {
            throw ModelError.badMetadata(file: path, reason: "has no \"arch\"")
        }
        if let version = settings?["format_version"] as? Int, version > formatVersion {
            throw ModelError.badMetadata(file: path, reason: "format_version \(version): this plateseg reads format \(formatVersion) and older; update plateseg")
        }
        let given = Set(settings?.keys.map { $0 } ?? [])
        if let expected, let kind = ModelKind(rawValue: arch), kind != expected {
            throw ModelError.wrongNetwork(file: path, holds: kind.rawValue, loadedAs: expected.rawValue)
        }
        switch ModelKind(rawValue: arch) {
        case .yolox: return try YOLOX(weights: weights, config: decode(YOLOXConfig.self, json, given: given, path))
        case .upernet: return try UPerNet(weights: weights, config: decode(UPerNetConfig.self, json, given: given, path))
        case .maskrcnn: return try MaskRCNN(weights: weights, config: decode(MaskRCNNConfig.self, json, given: given, path))
        case nil:
            throw ModelError.badMetadata(file: path, reason: "names architecture \"\(arch)\"; known: \(ModelKind.allCases.map(\.rawValue))")
        }
    }

    /// The calibrated ranges beside a model file (`plateseg calibrate-int8`), which must be
    /// those of this version of the file.
    static func int8Ranges(of path: String) throws -> ActivationRanges {
        let companion = ActivationRanges.path(besideModel: path)
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: companion)) } catch {
            throw ModelError.calibration(file: path, reason: "has no int8 calibration beside it (\(companion)); run `plateseg calibrate-int8` or choose --precision bf16 or fp32")
        }
        let ranges = try ActivationRanges.decode(data, file: companion)
        let hash = ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: path)))
        guard ranges.modelFile == hash else {
            throw ModelError.calibration(file: companion, reason: "was calibrated for another version of \(path) (\(ranges.modelFile), the file is \(hash)); run `plateseg calibrate-int8` again")
        }
        return ranges
    }

    /// µm per pixel of the images the file's network was trained on, as its metadata records it
    /// (nil when it does not); reads the header only.
    public static func pixelSize(path: String) throws -> Double? {
        let settings = (try? JSONSerialization.jsonObject(with: try metadataJSON(try SafeTensorsFile(path: path)))) as? [String: Any]
        return (settings?["pixel_size"] as? NSNumber)?.doubleValue
    }

    static func metadataJSON(_ file: SafeTensorsFile) throws -> Data {
        guard let text = file.metadata["plateseg"] else {
            throw ModelError.badMetadata(file: file.path, reason: "lacks the \"plateseg\" entry of __metadata__")
        }
        return Data(text.utf8)
    }

    /// The newest `format_version` of training/archs/export.py this engine reads.
    static let formatVersion = 1

    /// `given`: the keys of `json`, which must all be settings the config reads.
    static func decode<T: Codable>(_ type: T.Type, _ json: Data, given: Set<String>, _ path: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let config: T
        do { config = try decoder.decode(type, from: json) } catch let DecodingError.keyNotFound(key, _) {
            throw ModelError.badMetadata(file: path, reason: "lacks \"\(key.stringValue)\"")
        } catch {
            throw ModelError.badMetadata(file: path, reason: "cannot be read: \(error)")
        }
        try refuseUnknownSettings(given, understood: config, path)
        return config
    }

    /// A setting the engine does not read would be ignored without a word, and the results stored
    /// under the file's hash as if it had been honoured (an older plateseg reading a newer export
    /// did exactly that with `input_scale`). The settings read are the config's own fields,
    /// found by encoding it back.
    private static func refuseUnknownSettings<T: Encodable>(_ given: Set<String>, understood config: T, _ path: String) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // A config that cannot be encoded (not finite numbers) says nothing about the keys it read.
        guard let encoded = try? encoder.encode(config),
              let read = (try? JSONSerialization.jsonObject(with: encoded)) as? [String: Any] else { return }
        let unknown = given.subtracting(read.keys).subtracting(["arch", "format_version"]).sorted()
        guard unknown.isEmpty else {
            throw ModelError.badMetadata(file: path, reason: "carries settings this plateseg does not know (\(unknown.joined(separator: ", "))): "
                                         + "it was exported by a newer training/; update plateseg, or export the file with this version's training/")
        }
    }
}
