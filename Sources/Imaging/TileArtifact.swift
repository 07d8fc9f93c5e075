import Foundation

/// What one network produced on one tile, in the tile's own pixel coordinates. It is the unit
/// stored per `infer` job and read back by the merge.
public struct TileArtifact: Sendable, Equatable {
    public var model: String
    /// Where the tile lies in its image.
    public var tile: PixelRect
    public var classes: [String]
    public var detections: [Detection]
    /// Empty, or one single-channel soft mask per detection covering that detection's box.
    public var masks: [ProbabilityMap]
    /// Per-pixel probabilities, background first then `classes`, at tile resolution.
    public var semantic: ProbabilityMap?

    public init(model: String, tile: PixelRect, classes: [String], detections: [Detection] = [],
                masks: [ProbabilityMap] = [], semantic: ProbabilityMap? = nil) {
        precondition(masks.isEmpty || masks.count == detections.count, "one mask per detection")
        self.model = model
        self.tile = tile
        self.classes = classes
        self.detections = detections
        self.masks = masks
        self.semantic = semantic
    }
}

extension TileArtifact {
    private static let magic: [UInt8] = Array("PSA1".utf8)

    private struct Header: Codable {
        var model: String
        var tile: PixelRect
        var classes: [String]
        var detections: Int
        var maskSize: Int?
        var semantic: [Int]?  // channels, width, height
    }

    /// Header, Float32 detections, then 8-bit maps through a row-delta filter; all in one zstd frame.
    public func encoded(level: Int32 = 3) -> [UInt8] {
        let maskSize = masks.first?.width
        let header = Header(
            model: model, tile: tile, classes: classes, detections: detections.count,
            maskSize: maskSize,
            semantic: semantic.map { [$0.channels, $0.width, $0.height] })
        let json = try! JSONEncoder().encode(header)  // plain value types: cannot fail
        var out = Self.magic
        appendLE(UInt32(json.count), to: &out)
        out += json
        for d in detections {
            for v in [d.box.x0, d.box.y0, d.box.x1, d.box.y1, d.score] + d.classProbabilities {
                appendLE(v.bitPattern, to: &out)
            }
        }
        if let m = maskSize {
            var bytes = masks.flatMap { mask in
                precondition(mask.width == m && mask.height == m && mask.channels == 1, "masks share one square size")
                return mask.values
            }
            RowDelta.encode(&bytes, rowLength: m)
            out += bytes
        }
        if let s = semantic {
            var bytes = s.values
            RowDelta.encode(&bytes, rowLength: s.width)
            out += bytes
        }
        return Zstd.compress(out, level: level)
    }

    public static func decode(_ compressed: [UInt8], name: String) throws -> TileArtifact {
        let bytes = try Zstd.decompress(compressed, name: name)
        var reader = ByteReader(bytes: bytes, name: name)
        guard try reader.take(4) == ArraySlice(magic) else {
            throw ImagingError.badArtifact(name: name, reason: "not a plateseg tile artifact")
        }
        let headerLength = Int(try reader.uint32())
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(try reader.take(headerLength))) } catch let e as ImagingError {
            throw e
        } catch {
            throw ImagingError.badArtifact(name: name, reason: "header is not valid: \(error)")
        }
        let perDetection = 5 + header.classes.count
        guard header.detections >= 0, header.detections < 1_000_000 else {
            throw ImagingError.badArtifact(name: name, reason: "implausible detection count \(header.detections)")
        }
        var detections: [Detection] = []
        detections.reserveCapacity(header.detections)
        for _ in 0..<header.detections {
            var v: [Float] = []
            for _ in 0..<perDetection { v.append(Float(bitPattern: try reader.uint32())) }
            detections.append(Detection(box: Box(x0: v[0], y0: v[1], x1: v[2], y1: v[3]), score: v[4],
                                        classProbabilities: Array(v[5...])))
        }
        var masks: [ProbabilityMap] = []
        if let m = header.maskSize, header.detections > 0 {
            guard m > 0, m <= 1024 else { throw ImagingError.badArtifact(name: name, reason: "mask size \(m)") }
            var all = Array(try reader.take(m * m * header.detections))
            RowDelta.decode(&all, rowLength: m)
            for i in 0..<header.detections {
                masks.append(ProbabilityMap(channels: 1, width: m, height: m, values: Array(all[(i * m * m)..<((i + 1) * m * m)])))
            }
        }
        var semantic: ProbabilityMap?
        if let dims = header.semantic {
            guard dims.count == 3, dims.allSatisfy({ $0 > 0 && $0 <= 1 << 14 }) else {
                throw ImagingError.badArtifact(name: name, reason: "semantic map dimensions \(dims)")
            }
            var values = Array(try reader.take(dims[0] * dims[1] * dims[2]))
            RowDelta.decode(&values, rowLength: dims[1])
            semantic = ProbabilityMap(channels: dims[0], width: dims[1], height: dims[2], values: values)
        }
        guard reader.atEnd else {
            throw ImagingError.badArtifact(name: name, reason: "\(bytes.count - reader.offset) unexpected trailing bytes")
        }
        return TileArtifact(model: header.model, tile: header.tile, classes: header.classes,
                            detections: detections, masks: masks, semantic: semantic)
    }
}

private func appendLE(_ v: UInt32, to out: inout [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: v))
    out.append(UInt8(truncatingIfNeeded: v >> 8))
    out.append(UInt8(truncatingIfNeeded: v >> 16))
    out.append(UInt8(truncatingIfNeeded: v >> 24))
}

private struct ByteReader {
    let bytes: [UInt8]
    let name: String
    var offset = 0

    init(bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.name = name
    }

    var atEnd: Bool { offset == bytes.count }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, offset + n <= bytes.count else {
            throw ImagingError.badArtifact(name: name, reason: "truncated: needs \(n) bytes at offset \(offset), has \(bytes.count - offset)")
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func uint32() throws -> UInt32 {
        let b = try take(4)
        return b.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
}
