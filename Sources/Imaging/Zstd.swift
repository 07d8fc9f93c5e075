import CZstd
import Foundation

/// zstd frames, one call each way. Frames carry zstd's content checksum: a damaged stored
/// artifact can otherwise decode into plausible wrong numbers (a flipped literal byte), and
/// decompression checks it.
public enum Zstd {
    public static func compress(_ bytes: [UInt8], level: Int32 = 3) -> [UInt8] {
        let bound = ZSTD_compressBound(bytes.count)
        var out = [UInt8](repeating: 0, count: bound)
        let context = ZSTD_createCCtx()
        defer { ZSTD_freeCCtx(context) }
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1)
        let written = bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                ZSTD_compress2(context, dst.baseAddress, bound, src.baseAddress, src.count)
            }
        }
        precondition(ZSTD_isError(written) == 0, "zstd compression cannot fail with a bound-sized buffer")
        out.removeSubrange(written...)
        return out
    }

    public static let maxContentSize: UInt64 = 1 << 29

    public static func decompress(_ bytes: [UInt8], name: String) throws -> [UInt8] {
        let size = bytes.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN / _ERROR are the two top values of UInt64.
        guard size < UInt64.max - 1 else {
            throw ImagingError.badArtifact(name: name, reason: "not a zstd frame with a known size")
        }
        // A damaged header may declare gigabytes; the largest tile output (an 8192x8192 tile's
        // class maps) is far below this, and the size is checked before anything is allocated.
        guard size <= maxContentSize else {
            throw ImagingError.badArtifact(name: name, reason: "declares \(size) bytes, more than any tile needs")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let read = bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                ZSTD_decompress(dst.baseAddress, dst.count, src.baseAddress, src.count)
            }
        }
        guard ZSTD_isError(read) == 0, read == Int(size) else {
            throw ImagingError.badArtifact(name: name, reason: "zstd frame is damaged")
        }
        return out
    }
}
