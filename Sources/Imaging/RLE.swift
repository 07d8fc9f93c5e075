import Foundation

/// A run-length encoding that does not describe a mask of the stated image; the caller adds the
/// file and row it came from.
public struct RLEError: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    public let reason: String

    public init(_ reason: String) { self.reason = reason }

    public var description: String { "bad run-length encoding: \(reason)" }
    public var errorDescription: String? { description }
}

/// The Kaggle Sartorius `train.csv` encoding: "start length start length …" with 1-based starts
/// over the image in ROW-major order. (The competition page says column-major; its data is
/// row-major, and so is every submission that scored.)
public enum KaggleRLE {
    public static func decode(_ text: some StringProtocol, width: Int, height: Int) throws -> Mask {
        try checkSize(width: width, height: height)
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard tokens.count % 2 == 0 else {
            throw RLEError("\(tokens.count) numbers; expected start/length pairs")
        }
        let total = width * height
        var runs: [(start: Int, end: Int)] = []
        runs.reserveCapacity(tokens.count / 2)
        var minY = Int.max, maxY = Int.min, minX = Int.max, maxX = Int.min
        for i in stride(from: 0, to: tokens.count, by: 2) {
            guard let start = Int(tokens[i]), let length = Int(tokens[i + 1]) else {
                throw RLEError("'\(tokens[i]) \(tokens[i + 1])' is not a pair of integers")
            }
            guard start >= 1 else { throw RLEError("start \(start) is below 1 (starts are 1-based)") }
            guard length >= 1 else { throw RLEError("run at \(start) has length \(length)") }
            guard start <= total, length <= total, start - 1 + length <= total else {
                throw RLEError("run \(start)+\(length) ends past the \(width)x\(height) image (\(total) pixels)")
            }
            let s = start - 1, e = s + length
            runs.append((s, e))
            let y0 = s / width, y1 = (e - 1) / width
            minY = min(minY, y0)
            maxY = max(maxY, y1)
            if y0 == y1 {
                minX = min(minX, s % width)
                maxX = max(maxX, (e - 1) % width)
            } else {
                minX = 0
                maxX = width - 1
            }
        }
        guard !runs.isEmpty else { return Mask(imageWidth: width, imageHeight: height) }
        let window = PixelRect(x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1)
        var bits = [UInt8](repeating: 0, count: window.area)
        for run in runs {
            var p = run.start
            while p < run.end {
                let y = p / width, x = p % width
                let rowEnd = min(run.end, (y + 1) * width)
                let base = (y - window.y) * window.width - window.x
                for xx in x..<(x + rowEnd - p) { bits[base + xx] = 1 }
                p = rowEnd
            }
        }
        return Mask(imageWidth: width, imageHeight: height, window: window, bits: bits)
    }

    public static func encode(_ mask: Mask) -> String {
        var parts: [String] = []
        let b = mask.box
        var pending: (start: Int, length: Int)?
        for y in 0..<b.height {
            var x = 0
            while x < b.width {
                guard mask.bits[y * b.width + x] != 0 else { x += 1; continue }
                var e = x
                while e < b.width && mask.bits[y * b.width + e] != 0 { e += 1 }
                let start = (y + b.y) * mask.imageWidth + b.x + x
                // Runs that wrap from one row's end to the next row's start are one run.
                if let p = pending, p.start + p.length == start {
                    pending = (p.start, p.length + e - x)
                } else {
                    if let p = pending { parts.append("\(p.start + 1) \(p.length)") }
                    pending = (start, e - x)
                }
                x = e
            }
        }
        if let p = pending { parts.append("\(p.start + 1) \(p.length)") }
        return parts.joined(separator: " ")
    }
}

/// COCO's run-length encoding as pycocotools defines it: COLUMN-major (Fortran order) over the
/// whole image, counts alternating background/foreground and starting with background (possibly
/// a zero count). `compressedString` is the `counts` string pycocotools writes to JSON.
public struct COCORLE: Sendable, Equatable, Codable {
    public let width: Int
    public let height: Int
    public let counts: [Int]

    public init(width: Int, height: Int, counts: [Int]) throws {
        try checkSize(width: width, height: height)
        var sum = 0
        for c in counts {
            guard c >= 0 else { throw RLEError("negative count \(c)") }
            sum += min(c, width * height + 1)  // capped: a damaged count must not overflow the sum
        }
        guard sum == width * height else {
            throw RLEError("counts sum to \(sum), but a \(width)x\(height) image has \(width * height) pixels")
        }
        self.width = width
        self.height = height
        self.counts = counts
    }

    public init(mask: Mask) {
        width = mask.imageWidth
        height = mask.imageHeight
        let b = mask.box
        var counts: [Int] = []
        var position = 0  // column-major index where the current background run began
        var runStart = -1, runEnd = -1
        for x in 0..<b.width {
            var y = 0
            while y < b.height {
                guard mask.bits[y * b.width + x] != 0 else { y += 1; continue }
                var e = y
                while e < b.height && mask.bits[e * b.width + x] != 0 { e += 1 }
                let s = (b.x + x) * height + b.y + y
                if s == runEnd {
                    runEnd += e - y
                } else {
                    if runStart >= 0 {
                        counts.append(runStart - position)
                        counts.append(runEnd - runStart)
                        position = runEnd
                    }
                    runStart = s
                    runEnd = s + e - y
                }
                y = e
            }
        }
        if runStart >= 0 {
            counts.append(runStart - position)
            counts.append(runEnd - runStart)
            position = runEnd
        }
        let total = width * height
        if position < total || counts.isEmpty { counts.append(total - position) }
        self.counts = counts
    }

    /// Parses the compressed `counts` string of pycocotools (`rleFrString`): each count is a
    /// little-endian sequence of 5-bit groups, sign-extended, with 0x20 marking "more follows";
    /// from the fourth count on, it is stored as the difference to the count two places back.
    public init(compressed: some StringProtocol, width: Int, height: Int) throws {
        var counts: [Int] = []
        var more = false, value = 0, shift = 0
        for byte in compressed.utf8 {
            guard byte >= 48, byte < 48 + 64 else {
                throw RLEError("character '\(Character(Unicode.Scalar(byte)))' cannot occur in a compressed COCO RLE")
            }
            let c = Int(byte) - 48
            value |= (c & 0x1f) << shift
            shift += 5
            more = c & 0x20 != 0
            guard shift <= 60 else { throw RLEError("a count is longer than 12 characters") }
            if !more {
                if c & 0x10 != 0 { value |= -1 << shift }
                if counts.count > 2 { value += counts[counts.count - 2] }
                counts.append(value)
                value = 0
                shift = 0
            }
        }
        guard !more else { throw RLEError("the string ends inside a count") }
        try self.init(width: width, height: height, counts: counts)
    }

    public var compressedString: String {
        var out: [UInt8] = []
        for (i, count) in counts.enumerated() {
            var x = count
            if i > 2 { x -= counts[i - 2] }
            var more = true
            while more {
                var c = x & 0x1f
                x >>= 5
                more = c & 0x10 != 0 ? x != -1 : x != 0
                if more { c |= 0x20 }
                out.append(UInt8(c + 48))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public func mask() -> Mask {
        var minX = Int.max, maxX = Int.min, minY = Int.max, maxY = Int.min
        var p = 0
        var runs: [(Int, Int)] = []
        for (i, c) in counts.enumerated() {
            if i % 2 == 1 && c > 0 {
                runs.append((p, p + c))
                let x0 = p / height, x1 = (p + c - 1) / height
                minX = min(minX, x0)
                maxX = max(maxX, x1)
                if x0 == x1 {
                    minY = min(minY, p % height)
                    maxY = max(maxY, (p + c - 1) % height)
                } else {
                    minY = 0
                    maxY = height - 1
                }
            }
            p += c
        }
        guard !runs.isEmpty else { return Mask(imageWidth: width, imageHeight: height) }
        let window = PixelRect(x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1)
        var bits = [UInt8](repeating: 0, count: window.area)
        for (s, e) in runs {
            for q in s..<e {
                bits[(q % height - window.y) * window.width + (q / height - window.x)] = 1
            }
        }
        return Mask(imageWidth: width, imageHeight: height, window: window, bits: bits)
    }
}

/// Images larger than this many pixels a side are refused: no microscope image is, and the pixel
/// index arithmetic stays far from overflow.
private let maximumSide = 1 << 16

private func checkSize(width: Int, height: Int) throws {
    guard width > 0, height > 0, width <= maximumSide, height <= maximumSide else {
        throw RLEError("image size \(width)x\(height) is not between 1 and \(maximumSide) pixels a side")
    }
}
