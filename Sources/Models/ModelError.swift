/// Everything that can go wrong loading or running a network, with the file and tensor named.
public enum ModelError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    /// The file is not a well-formed safetensors file.
    case malformed(file: String, reason: String)
    /// One tensor's entry is unusable (dtype, shape, offsets).
    case badTensor(file: String, tensor: String, reason: String)
    case missingTensor(file: String, tensor: String)
    case badMetadata(file: String, reason: String)
    /// The file holds another network than the one it is loaded as.
    case wrongNetwork(file: String, holds: String, loadedAs: String)
    /// The int8 calibration beside a model file is missing, unreadable or of another version.
    case calibration(file: String, reason: String)
    case badInput(String)
    case backend(String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "cannot read model file \(file): \(reason)"
        case let .malformed(file, reason): "\(file) is not a valid safetensors file: \(reason); re-export it with training/archs/export.py"
        case let .badTensor(file, tensor, reason): "\(file): tensor '\(tensor)' \(reason); re-export the file or check it matches its architecture"
        case let .missingTensor(file, tensor): "\(file): tensor '\(tensor)' is missing; the file does not match the architecture in its metadata"
        case let .badMetadata(file, reason): "\(file): metadata \(reason); export with training/archs/export.py, which writes it"
        case let .wrongNetwork(file, holds, loadedAs):
            "\(file) holds \(holds) weights (its metadata says so), not \(loadedAs); put the \(loadedAs) file there, or run the network by its own name (\(holds).safetensors)"
        case let .calibration(file, reason): "\(file): \(reason)"
        case let .badInput(reason): "bad network input: \(reason)"
        case let .backend(reason): reason
        }
    }
}
