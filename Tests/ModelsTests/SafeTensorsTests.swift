import Foundation
import Testing
@testable import Models

/// Writes safetensors files byte by byte, so each test can build exactly the defect it checks.
struct SafeTensorsBuilder {
    struct Item {
        var name: String
        var dtype: String
        var shape: [Int]
        var data: [UInt8]
        var offsets: [Int]? = nil
    }

    var items: [Item] = []
    var metadata: [String: String]? = nil

    mutating func add(_ name: String, f32 values: [Float], shape: [Int]) {
        items.append(Item(name: name, dtype: "F32", shape: shape, data: values.flatMap { le($0.bitPattern) }))
    }

    mutating func add(_ name: String, f16 values: [Float], shape: [Int]) {
        items.append(Item(name: name, dtype: "F16", shape: shape, data: values.flatMap { le16(Float16($0).bitPattern) }))
    }

    mutating func add(_ name: String, bf16 values: [Float], shape: [Int]) {
        items.append(Item(name: name, dtype: "BF16", shape: shape, data: values.flatMap { le16(UInt16($0.bitPattern >> 16)) }))
    }

    mutating func add(_ name: String, i8 values: [Int8], shape: [Int]) {
        items.append(Item(name: name, dtype: "I8", shape: shape, data: values.map { UInt8(bitPattern: $0) }))
    }

    func bytes() -> [UInt8] {
        var header: [String: Any] = [:]
        var data: [UInt8] = []
        for item in items {
            let offsets = item.offsets ?? [data.count, data.count + item.data.count]
            header[item.name] = ["dtype": item.dtype, "shape": item.shape, "data_offsets": offsets]
            data += item.data
        }
        if let metadata { header["__metadata__"] = metadata }
        let json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        return le64(UInt64(json.count)) + Array(json) + data
    }

    func write(_ name: String) throws -> String {
        try write(bytes(), name)
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-models-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }
    private func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

@Suite struct SafeTensorsTests {
    private func sample() -> SafeTensorsBuilder {
        var b = SafeTensorsBuilder()
        b.add("backbone.conv.weight", f32: [1.5, -2.25, 0.125, 3e-5, -7, 1e6], shape: [2, 3])
        b.add("backbone.bn.weight", f16: [0.5, -1.75, 2049], shape: [3])
        b.add("head.bias", bf16: [1.0, -0.3125, 3.5], shape: [3, 1])
        b.metadata = ["plateseg": "{\"arch\": \"yolox\"}"]
        return b
    }

    @Test func readsF32F16AndBF16ByScopedNames() throws {
        let file = try SafeTensorsFile(path: try sample().write("ok.safetensors"))
        let w = Weights(file: file)
        #expect(try w.scoped("backbone").tensor("conv.weight", shape: [2, 3]) == [1.5, -2.25, 0.125, 3e-5, -7, 1e6])
        // 2049 is not representable in f16: it is stored as 2048
        #expect(try w.scoped("backbone").scoped("bn").tensor("weight", shape: [3]) == [0.5, -1.75, 2048])
        #expect(try w.tensor("head.bias", shape: [3, 1]) == [1.0, -0.3125, 3.5])
        #expect(w.scoped("head").scoped(2).path("conv.weight") == "head.2.conv.weight")
        #expect(file.metadata["plateseg"] == "{\"arch\": \"yolox\"}")
    }

    @Test func int8TensorsAreScaledPerOutputChannel() throws {
        var b = SafeTensorsBuilder()
        b.add("conv.weight", i8: [127, -127, 3, 0, -64, 1], shape: [2, 3, 1, 1])
        b.add("conv.weight_scale", f32: [0.5, 0.25], shape: [2])
        let w = Weights(file: try SafeTensorsFile(path: try b.write("int8.safetensors")))
        #expect(try w.tensor("conv.weight", shape: [2, 3, 1, 1]) == [63.5, -63.5, 1.5, 0, -16, 0.25])
    }

    @Test func int8WithoutItsScalesNamesWhatIsMissing() throws {
        var b = SafeTensorsBuilder()
        b.add("conv.weight", i8: [1, 2, 3, 4], shape: [2, 2])
        let bare = try b.write("int8-bare.safetensors")
        #expect { try Weights(file: try SafeTensorsFile(path: bare)).tensor("conv.weight", shape: [2, 2]) } throws: { e in
            guard case let ModelError.badTensor(file, tensor, reason) = e else { return false }
            return file == bare && tensor == "conv.weight" && reason.contains("conv.weight_scale")
        }
        b.add("conv.weight_scale", f32: [1, 1, 1], shape: [3])
        let wrong = try b.write("int8-wrong-scale.safetensors")
        #expect { try Weights(file: try SafeTensorsFile(path: wrong)).tensor("conv.weight", shape: [2, 2]) } throws: { e in
            guard case let ModelError.badTensor(_, tensor, reason) = e else { return false }
            return tensor == "conv.weight_scale" && reason.contains("[2]")
        }
    }

    @Test func truncatedFileNamesTheTensorCut() throws {
        let bytes = sample().bytes()
        let path = try SafeTensorsBuilder().write(Array(bytes.dropLast(3)), "truncated.safetensors")
        #expect { try SafeTensorsFile(path: path) } throws: { e in
            guard case let ModelError.badTensor(file, tensor, reason) = e else { return false }
            return file == path && tensor == "head.bias" && reason.contains("outside")
        }
    }

    /// Found by fuzzing: dimensions whose product overflows an Int trapped instead of being refused.
    @Test func aShapeTooLargeForAnyFileIsRefused() throws {
        let header = Array(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#.utf8)
        var length = UInt64(header.count).littleEndian
        let bytes = withUnsafeBytes(of: &length) { Array($0) } + header + [0, 0, 0, 0]
        let path = try SafeTensorsBuilder().write(bytes, "overflow.safetensors")
        #expect(throws: ModelError.badTensor(file: path, tensor: "w", reason: "has a shape [4611686018427387904, 4] too large for any file")) {
            try SafeTensorsFile(path: path)
        }
    }

    @Test func headerLengthPastTheEndIsRefused() throws {
        var bytes = sample().bytes()
        bytes[0] = 0xFF
        bytes[3] = 0x7F
        let path = try SafeTensorsBuilder().write(bytes, "header.safetensors")
        #expect(throws: ModelError.self) { try SafeTensorsFile(path: path) }
        do { _ = try SafeTensorsFile(path: path) } catch let e as ModelError {
            guard case let .malformed(file, reason) = e else { Issue.record("wrong error \(e)"); return }
            #expect(file == path && reason.contains("past the end"))
            #expect(e.description.contains(path))
        }
        let short = try SafeTensorsBuilder().write([1, 2, 3], "short.safetensors")
        #expect(throws: ModelError.malformed(file: short, reason: "3 bytes is shorter than the 8-byte header length")) {
            try SafeTensorsFile(path: short)
        }
    }

    @Test func offsetsOutOfRangeNameTheTensor() throws {
        var b = sample()
        b.items[1].offsets = [24, 24 + 600]
        let path = try b.write("offsets.safetensors")
        #expect { try SafeTensorsFile(path: path) } throws: { e in
            guard case let ModelError.badTensor(file, tensor, _) = e else { return false }
            return file == path && tensor == "backbone.bn.weight"
        }
        var c = sample()
        c.items[0].offsets = [4, 0]
        let reversed = try c.write("reversed.safetensors")
        #expect { try SafeTensorsFile(path: reversed) } throws: { e in
            guard case let ModelError.badTensor(_, tensor, _) = e else { return false }
            return tensor == "backbone.conv.weight"
        }
    }

    @Test func unsupportedDtypeAndSizeMismatchNameTheTensor() throws {
        var b = sample()
        b.items[2].dtype = "I64"
        let path = try b.write("dtype.safetensors")
        #expect { try SafeTensorsFile(path: path) } throws: { e in
            guard case let ModelError.badTensor(file, tensor, reason) = e else { return false }
            return file == path && tensor == "head.bias" && reason.contains("I64")
        }
        var c = sample()
        c.items[0].shape = [3, 3]
        let mismatch = try c.write("bytes.safetensors")
        #expect { try SafeTensorsFile(path: mismatch) } throws: { e in
            guard case let ModelError.badTensor(_, tensor, reason) = e else { return false }
            return tensor == "backbone.conv.weight" && reason.contains("needs 36")
        }
    }

    @Test func wrongShapeAndMissingTensorNameFileAndTensor() throws {
        let path = try sample().write("shape.safetensors")
        let w = Weights(file: try SafeTensorsFile(path: path))
        #expect(throws: ModelError.badTensor(file: path, tensor: "backbone.conv.weight",
                                             reason: "has shape [2, 3], the architecture expects [3, 2]")) {
            try w.scoped("backbone").tensor("conv.weight", shape: [3, 2])
        }
        #expect(throws: ModelError.missingTensor(file: path, tensor: "backbone.conv.bias")) {
            try w.scoped("backbone").tensor("conv.bias", shape: [2])
        }
    }

    @Test func notJSONAndUnreadableFilesAreErrors() throws {
        let json = Array("not json".utf8)
        let bytes: [UInt8] = [UInt8(json.count), 0, 0, 0, 0, 0, 0, 0] + json
        let path = try SafeTensorsBuilder().write(bytes, "json.safetensors")
        #expect(throws: ModelError.malformed(file: path, reason: "the header is not a JSON object")) { try SafeTensorsFile(path: path) }
        #expect { try SafeTensorsFile(path: "/nonexistent/model.safetensors") } throws: { e in
            guard case let ModelError.unreadable(file, _) = e else { return false }
            return file == "/nonexistent/model.safetensors"
        }
    }
}

/// The loader on real exported files with one defect each.
@Suite struct ModelLoaderTests {
    /// The YOLOX fixture re-written without one tensor, or with one tensor's shape changed.
    private func variant(dropping drop: String? = nil, reshaping: String? = nil, metadata: String?? = nil) throws -> String {
        let file = try SafeTensorsFile(path: Fixture.path("yolox.safetensors"))
        var b = SafeTensorsBuilder()
        for name in file.entries.keys.sorted() where name != drop {
            let e = file.entries[name]!
            let values = try file.floats(name, shape: e.shape)
            b.add(name, f32: values, shape: name == reshaping ? [values.count] : e.shape)
        }
        b.metadata = file.metadata
        if let metadata { b.metadata = metadata.map { ["plateseg": $0] } ?? [:] }
        return try b.write("yolox-\(drop ?? reshaping ?? "meta").safetensors")
    }

    @Test func missingTensorIsNamed() throws {
        let path = try variant(dropping: "head.obj_preds.2.bias")
        #expect(throws: ModelError.missingTensor(file: path, tensor: "head.obj_preds.2.bias")) { try ModelLoader.load(path: path) }
    }

    @Test func wrongShapeIsNamed() throws {
        let path = try variant(reshaping: "backbone.backbone.dark3.1.m.0.conv2.conv.weight")
        #expect { try ModelLoader.load(path: path) } throws: { e in
            guard case let ModelError.badTensor(file, tensor, reason) = e else { return false }
            return file == path && tensor == "backbone.backbone.dark3.1.m.0.conv2.conv.weight" && reason.contains("expects")
        }
    }

    @Test func metadataProblemsAreNamed() throws {
        let none = try variant(metadata: .some(nil))
        #expect { try ModelLoader.load(path: none) } throws: { e in
            guard case let ModelError.badMetadata(file, _) = e else { return false }
            return file == none
        }
        let unknown = try variant(metadata: "{\"arch\": \"resnest\"}")
        #expect { try ModelLoader.load(path: unknown) } throws: { e in
            guard case let ModelError.badMetadata(_, reason) = e else { return false }
            return reason.contains("resnest")
        }
        let incomplete = try variant(metadata: "{\"arch\": \"yolox\", \"depth\": 0.33}")
        #expect { try ModelLoader.load(path: incomplete) } throws: { e in
            guard case let ModelError.badMetadata(_, reason) = e else { return false }
            return reason.contains("lacks")
        }
    }

    /// A setting the engine does not read must not be dropped without a word: the results would be
    /// stored under the file's hash as if it had been honoured.
    @Test func settingsTheEngineDoesNotKnowAreRefused() throws {
        for arch in ["yolox", "maskrcnn", "upernet"] {
            Fixture.expectRefused(try Fixture.variant(of: arch, as: "\(arch)-unknown.safetensors") { $0["mosaic_prob"] = 0.8 },
                                  naming: "mosaic_prob")
            Fixture.expectRefused(try Fixture.variant(of: arch, as: "\(arch)-format2.safetensors") { $0["format_version"] = 2 },
                                  naming: "format_version 2")
        }
        Fixture.expectRefused(try Fixture.variant(of: "yolox", as: "yolox-relu.safetensors") { $0["activation"] = "relu" },
                              naming: "relu")
        Fixture.expectRefused(try Fixture.variant(of: "maskrcnn", as: "maskrcnn-pad.safetensors") { $0["pad_value"] = 114 },
                              naming: "pad_value")
        // Every setting the exporter writes today is read.
        for arch in ["yolox", "yolox_dw", "maskrcnn", "upernet"] { _ = try Fixture.model(arch) }
    }

    /// torchvision before 0.13 named the RPN conv `rpn.head.conv` and the mask head convs
    /// `mask_head.mask_fcn1..4`; files with those names load and compute the same.
    @Test func maskRCNNAcceptsLegacyTorchvisionNames() throws {
        let file = try SafeTensorsFile(path: Fixture.path("maskrcnn.safetensors"))
        var b = SafeTensorsBuilder()
        for name in file.entries.keys.sorted() {
            let e = file.entries[name]!
            var renamed = name.replacingOccurrences(of: "rpn.head.conv.0.0.", with: "rpn.head.conv.")
            for i in 0..<4 { renamed = renamed.replacingOccurrences(of: "mask_head.\(i).0.", with: "mask_head.mask_fcn\(i + 1).") }
            b.add(renamed, f32: try file.floats(name, shape: e.shape), shape: e.shape)
        }
        b.metadata = file.metadata
        let path = try b.write("maskrcnn-legacy.safetensors")
        #expect(try SafeTensorsFile(path: path).entries.keys.contains("rpn.head.conv.weight"))
        let tile = try Fixture.expected("maskrcnn").tile()
        #expect(try ModelLoader.load(path: path).run(tile) == Fixture.model("maskrcnn").run(tile))
    }

    @Test func loaderPicksTheArchitectureFromMetadata() throws {
        #expect(try Fixture.model("yolox").kind == .yolox)
        #expect(try Fixture.model("upernet").kind == .upernet)
        #expect(try Fixture.model("maskrcnn").kind == .maskrcnn)
    }
}
