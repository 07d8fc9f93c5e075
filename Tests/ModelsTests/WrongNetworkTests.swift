import Foundation
import Testing
@testable import Models

/// A file holding one network's weights under another network's name would have its outputs
/// stored as that network's: it is refused when loaded, naming the file and both networks.
@Suite struct WrongNetworkTests {
    @Test func aYOLOXFileLoadedAsMaskRCNNIsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-wrong-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let misnamed = folder.appendingPathComponent("maskrcnn.safetensors").path
        try FileManager.default.copyItem(atPath: "\(Fixture.directory)/yolox.safetensors", toPath: misnamed)
        let error = try #require(throws: ModelError.self) { try ModelLoader.load(path: misnamed, as: .maskrcnn) }
        #expect(error == .wrongNetwork(file: misnamed, holds: "yolox", loadedAs: "maskrcnn"))
        #expect(error.description.contains(misnamed) && error.description.contains("holds yolox weights") && error.description.contains("not maskrcnn"))
        #expect(try ModelLoader.load(path: misnamed).kind == .yolox, "loaded for what it is, it loads")
        #expect(try ModelLoader.load(path: "\(Fixture.directory)/maskrcnn.safetensors", as: .maskrcnn).kind == .maskrcnn)
    }
}
