import Foundation

/// The repository root, found from this file's location so tests run from any directory.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let demoImage = repositoryRoot.appendingPathComponent("demo/plate/0f08d640930b.png").path

func scratchFolder() -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-imaging-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
