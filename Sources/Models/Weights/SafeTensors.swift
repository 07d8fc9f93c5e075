import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A memory-mapped safetensors file: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw data. Everything is checked when the file is
/// opened, so a bad file fails at load with its name and the tensor at fault, never mid-inference.
///
/// Int8 tensors are weights quantised per output channel: `name` holds I8 values of shape
/// [out, ...] and `name_scale` the [out] float scales; `floats` returns value x scale. It halves
/// an f16 file at no compute cost, since the engine reorders weights to f32 once at load anyway.
public final class SafeTensorsFile: @unchecked Sendable {
    public enum DType: String, Sendable {
        case f32 = "F32"
        case f16 = "F16"
        case bf16 = "BF16"
        case i8 = "I8"

        var size: Int {
            switch self {
            case .f32: 4
            case .f16, .bf16: 2
            case .i8: 1
            }
        }
    }

    public struct Entry: Sendable {
        public let dtype: DType
        public let shape: [Int]
        let offset: Int
        let byteCount: Int
    }

    public let path: String
    public let entries: [String: Entry]
    /// The `__metadata__` string map.
    public let metadata: [String: String]
    private let base: UnsafeMutableRawPointer
    private let mappedSize: Int
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ModelError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        guard size >= 8 else { throw ModelError.malformed(file: path, reason: "\(size) bytes is shorter than the 8-byte header length") }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw ModelError.unreadable(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = m
        mappedSize = size
        do {
            let headerLength = m.loadUnaligned(as: UInt64.self).littleEndian
            guard headerLength <= UInt64(size - 8) else {
                throw ModelError.malformed(file: path, reason: "header length \(headerLength) reaches past the end of the file (\(size) bytes); the file is truncated or not safetensors")
            }
            dataStart = 8 + Int(headerLength)
            let json = Data(bytes: m + 8, count: Int(headerLength))
            guard let header = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] else {
                throw ModelError.malformed(file: path, reason: "the header is not a JSON object")
            }
            (entries, metadata) = try Self.parse(header, path: path, dataSize: size - dataStart)
        } catch {
            munmap(m, size)
            throw error
        }
    }

    deinit { munmap(base, mappedSize) }

    private static func parse(_ header: [String: Any], path: String, dataSize: Int) throws -> ([String: Entry], [String: String]) {
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else {
                    throw ModelError.malformed(file: path, reason: "__metadata__ is not a map of strings")
                }
                metadata = m
                continue
            }
            guard let info = value as? [String: Any], let dt = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw ModelError.badTensor(file: path, tensor: name, reason: "has no valid dtype, shape and data_offsets") }
            guard let dtype = DType(rawValue: dt) else {
                throw ModelError.badTensor(file: path, tensor: name, reason: "has dtype \(dt); only F32, F16, BF16 and I8 (with a NAME_scale tensor) are supported")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw ModelError.badTensor(file: path, tensor: name, reason: "has a negative dimension in \(shape)") }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw ModelError.badTensor(file: path, tensor: name, reason: "has data offsets \(begin)..<\(end) outside the \(dataSize) data bytes (truncated file?)")
            }
            // A damaged header may claim dimensions whose product does not fit in an Int.
            let count = shape.reduce(Optional(1)) { product, d in
                product.flatMap { let (p, overflow) = $0.multipliedReportingOverflow(by: d); return overflow ? nil : p }
            }
            let bytes = count.flatMap { let (b, overflow) = $0.multipliedReportingOverflow(by: dtype.size); return overflow ? nil : b }
            guard let bytes else {
                throw ModelError.badTensor(file: path, tensor: name, reason: "has a shape \(shape) too large for any file")
            }
            guard end - begin == bytes else {
                throw ModelError.badTensor(file: path, tensor: name, reason: "holds \(end - begin) bytes but \(dt) \(shape) needs \(bytes)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, offset: begin, byteCount: end - begin)
        }
        return (entries, metadata)
    }

    /// The tensor as float32, checked against the `shape` the architecture expects.
    public func floats(_ name: String, shape: [Int]) throws -> [Float] {
        guard let e = entries[name] else { throw ModelError.missingTensor(file: path, tensor: name) }
        guard e.shape == shape else {
            throw ModelError.badTensor(file: path, tensor: name, reason: "has shape \(e.shape), the architecture expects \(shape)")
        }
        let count = shape.reduce(1, *)
        let src = UnsafeRawPointer(base + dataStart + e.offset)
        if e.dtype == .i8 { return try dequantized(name, count: count, channels: shape.first ?? 1, src: src) }
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            switch e.dtype {
            case .f32:
                memcpy(o.baseAddress!, src, count * 4)
                for i in 0..<count { o[i] = Float(bitPattern: UInt32(littleEndian: o[i].bitPattern)) }
            case .f16:
                for i in 0..<count { o[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
            case .bf16:
                for i in 0..<count { o[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            case .i8:
                preconditionFailure("int8 tensors are read by dequantized(_:count:channels:src:)")
            }
        }
        return out
    }

    private func dequantized(_ name: String, count: Int, channels: Int, src: UnsafeRawPointer) throws -> [Float] {
        let scaleName = "\(name)_scale"
        guard let se = entries[scaleName], se.dtype != .i8 else {
            throw ModelError.badTensor(file: path, tensor: name, reason: "is int8 but the file has no float tensor \(scaleName) with its per-channel scales; re-export the model")
        }
        guard se.shape == [channels] else {
            throw ModelError.badTensor(file: path, tensor: scaleName, reason: "has shape \(se.shape), the int8 tensor \(name) needs [\(channels)]")
        }
        let scales = try floats(scaleName, shape: [channels])
        let per = channels == 0 ? 0 : count / channels
        var out = [Float](repeating: 0, count: count)
        for c in 0..<channels {
            for i in c * per..<(c + 1) * per { out[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) * scales[c] }
        }
        return out
    }
}

/// A view of a weights file under a name prefix, so each block loads its tensors by the names of
/// the official implementation: `weights.scoped("backbone").scoped("stem")` reads
/// `backbone.stem.conv.weight` as `tensor("conv.weight", ...)`.
public struct Weights: Sendable {
    public let file: SafeTensorsFile
    public let prefix: String
    /// What the layers built from these weights run in.
    public let precision: Precision
    /// Each layer's calibrated input and output ranges, for int8.
    let ranges: [String: LayerRange]
    let outputRanges: [String: LayerRange]

    public init(file: SafeTensorsFile, prefix: String = "", precision: Precision = .fp32) {
        self.init(file: file, prefix: prefix, precision: precision, ranges: [:])
    }

    init(file: SafeTensorsFile, prefix: String, precision: Precision, ranges: [String: LayerRange], outputRanges: [String: LayerRange] = [:]) {
        self.file = file
        self.prefix = prefix
        self.precision = precision
        self.ranges = ranges
        self.outputRanges = outputRanges
    }

    public func scoped(_ name: String) -> Weights {
        Weights(file: file, prefix: path(name), precision: precision, ranges: ranges, outputRanges: outputRanges)
    }

    /// The calibrated input range of the layer `name` (its weights' name, unscoped).
    func range(_ name: String) -> LayerRange? { ranges[path(name)] }

    /// The calibrated range of what the layer `name` writes.
    func outputRange(_ name: String) -> LayerRange? { outputRanges[path(name)] }

    public func scoped(_ index: Int) -> Weights { scoped(String(index)) }

    public func path(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    public func has(_ name: String) -> Bool { file.entries[path(name)] != nil }

    /// The first of several names a layer has had (current first) whose `.weight` the file holds;
    /// the current name when none is there, so the missing-tensor error names what to export.
    public func layerName(_ names: String...) -> String {
        names.first { has("\($0).weight") } ?? names[0]
    }

    public func tensor(_ name: String, shape: [Int]) throws -> [Float] {
        try file.floats(path(name), shape: shape)
    }

    /// The shape stored for `name`, for layers whose width the file decides.
    public func shape(_ name: String) throws -> [Int] {
        guard let e = file.entries[path(name)] else { throw ModelError.missingTensor(file: file.path, tensor: path(name)) }
        return e.shape
    }
}
