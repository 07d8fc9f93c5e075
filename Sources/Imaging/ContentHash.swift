import Foundation

/// FNV-1a, 64 bits, over a file's bytes: enough to notice that an image or a model file
/// changed and to tie results to the inputs that produced them (not a security digest).
public enum ContentHash {
    public static func of(_ data: Data) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        // Through the raw bytes: Data's own iterator costs several times the hash itself, and
        // a worker hashes every field it reads and every model file it loads.
        data.withUnsafeBytes { bytes in
            for b in bytes {
                h = (h ^ UInt64(b)) &* 0x100_0000_01b3
            }
        }
        let hex = String(h, radix: 16)
        return "fnv1a64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }
}
