import Foundation
import JobStore
import Models
import Worker

/// Which handler runs which job kind in a `plateseg worker` process.
enum Wiring {
    static func handlers(modelsDir: String, store: any JobStore) throws -> [String: any JobHandler] {
        let dir = URL(fileURLWithPath: modelsDir).standardizedFileURL.path
        let cache = ModelCache { name in
            let path = "\(dir)/\(name).safetensors"
            guard FileManager.default.fileExists(atPath: path) else {
                throw PermanentJobError("\(path): no such model file; put the model there (`models/` ships the defaults) or pass --models-dir")
            }
            return try ModelLoader.load(path: path)
        }
        return [InferJob.kind: InferHandler(models: cache)]
    }
}
