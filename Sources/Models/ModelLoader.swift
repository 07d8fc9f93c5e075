import Foundation

/// Opens a weights file exported by training/archs/export.py and builds the network its metadata
/// names (`arch`), with the hyper-parameters the metadata carries.
public enum ModelLoader {
    public static func load(path: String) throws -> any Model {
        let file = try SafeTensorsFile(path: path)
        let weights = Weights(file: file)
        let json = try metadataJSON(file)
        guard let arch = (try? JSONSerialization.jsonObject(with: json)) .flatMap({ ($0 as? [String: Any])?["arch"] as? String }) else {
            throw ModelError.badMetadata(file: path, reason: "has no \"arch\"")
        }
        switch ModelKind(rawValue: arch) {
        case .yolox: return try YOLOX(weights: weights, config: decode(YOLOXConfig.self, json, path))
        case .upernet: return try UPerNet(weights: weights, config: decode(UPerNetConfig.self, json, path))
        case .maskrcnn: return try MaskRCNN(weights: weights, config: decode(MaskRCNNConfig.self, json, path))
        case nil:
            throw ModelError.badMetadata(file: path, reason: "names architecture \"\(arch)\"; known: \(ModelKind.allCases.map(\.rawValue))")
        }
    }

    static func metadataJSON(_ file: SafeTensorsFile) throws -> Data {
        guard let text = file.metadata["plateseg"] else {
            throw ModelError.badMetadata(file: file.path, reason: "lacks the \"plateseg\" entry of __metadata__")
        }
        return Data(text.utf8)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ json: Data, _ path: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(type, from: json) } catch let DecodingError.keyNotFound(key, _) {
            throw ModelError.badMetadata(file: path, reason: "lacks \"\(key.stringValue)\"")
        } catch {
            throw ModelError.badMetadata(file: path, reason: "cannot be read: \(error)")
        }
    }
}
