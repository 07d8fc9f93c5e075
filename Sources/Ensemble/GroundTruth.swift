import CSV
import Foundation
import Imaging

/// The annotated cells of one image.
public struct TruthImage: Sendable, Equatable {
    public var id: String
    public var width: Int
    public var height: Int
    public var cellType: String?
    public var masks: [Mask]

    public init(id: String, width: Int, height: Int, cellType: String?, masks: [Mask]) {
        self.id = id
        self.width = width
        self.height = height
        self.cellType = cellType
        self.masks = masks
    }
}

/// One bad row or annotation of a truth file. Its image is left out of the truth (scoring a
/// half-read image would be wrong); the other images still load.
public struct TruthError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// "line 17" for CSV, "annotation 42" for COCO.
    public var location: String
    public var image: String?
    public var reason: String

    public var description: String {
        let img = image.map { " (image \($0))" } ?? ""
        return "\(file), \(location)\(img): \(reason); fix or remove that row — the image is not scored until then"
    }
}

/// A whole truth file that cannot be read at all.
public struct TruthFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var reason: String

    public var description: String {
        "\(file): \(reason); give the competition train.csv (id,annotation,width,height,cell_type) or a COCO json"
    }
}

/// Truth read from a file: the images that loaded, in file order, and the rows that did not.
public struct GroundTruth: Sendable {
    public var images: [TruthImage]
    public var errors: [TruthError]
    /// Rows (annotations) that repeat an earlier one of the same image: each cell is counted
    /// once, and the repeats are named, so that a file written twice over does not pass unseen.
    public var repeats: [String] = []

    public init(images: [TruthImage], errors: [TruthError], repeats: [String] = []) {
        self.images = images
        self.errors = errors
        self.repeats = repeats
    }

    /// Reads the competition CSV (`.csv`) or a COCO json (anything else).
    public static func read(path: String) throws -> GroundTruth {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TruthFileError(file: path, reason: "cannot read it (\(error.localizedDescription))")
        }
        if path.lowercased().hasSuffix(".csv") {
            return try parseCSV(String(decoding: data, as: UTF8.self), file: path)
        }
        return try parseCOCO(data, file: path)
    }

    /// The Kaggle `train.csv`: one row per cell, Kaggle RLE (1-based, row-major), read as RFC 4180
    /// by CSV.swift (quoted fields, CRLF, a byte-order mark as spreadsheet programs write them).
    /// Rows are numbered as a spreadsheet shows them: the header is row 1.
    public static func parseCSV(_ text: String, file: String) throws -> GroundTruth {
        let reader: CSVReader
        do { reader = try CSVReader(string: text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text) } catch {
            throw TruthFileError(file: file, reason: "cannot be read as CSV (\(error))")
        }
        var records: [(Int, [String])] = []
        while let fields = reader.next() { records.append((records.count + 1, fields)) }
        if let error = reader.error { throw TruthFileError(file: file, reason: "is not CSV after row \(records.count) (\(error))") }
        var lines = records.makeIterator()
        guard let (_, headerFields) = lines.next() else { throw TruthFileError(file: file, reason: "the file is empty") }
        let header = headerFields.map { $0.trimmingCharacters(in: .whitespaces) }
        func column(_ name: String) throws -> Int {
            guard let i = header.firstIndex(of: name) else {
                throw TruthFileError(file: file, reason: "the header has no '\(name)' column (it has \(header.joined(separator: ",")))")
            }
            return i
        }
        let idC = try column("id"), annC = try column("annotation"), wC = try column("width"), hC = try column("height")
        let typeC = header.firstIndex(of: "cell_type")

        var order: [String] = []
        var byID: [String: TruthImage] = [:]
        var broken: Set<String> = []
        var errors: [TruthError] = []
        var repeats: [String] = []
        var firstRow: [String: [String: Int]] = [:]
        while let (lineNumber, fields) = lines.next() {
            if fields.allSatisfy({ $0.allSatisfy(\.isWhitespace) }) { continue }
            func fail(_ image: String?, _ reason: String) {
                errors.append(TruthError(file: file, location: "row \(lineNumber)", image: image, reason: reason))
                if let image { broken.insert(image) }
            }
            guard fields.count >= header.count else {
                fail(fields.first, "\(fields.count) fields, the header has \(header.count)")
                continue
            }
            let id = fields[idC].trimmingCharacters(in: .whitespaces)
            guard !id.isEmpty else { fail(nil, "empty id"); continue }
            guard let w = Int(fields[wC].trimmingCharacters(in: .whitespaces)),
                  let h = Int(fields[hC].trimmingCharacters(in: .whitespaces)), w > 0, h > 0 else {
                fail(id, "width/height '\(fields[wC])'/'\(fields[hC])' are not positive integers")
                continue
            }
            let cellType = typeC.map { fields[$0].trimmingCharacters(in: .whitespaces) }
            let annotation = fields[annC].trimmingCharacters(in: .whitespaces)
            if !annotation.isEmpty, let first = firstRow[id]?[annotation] {
                repeats.append("\(file), row \(lineNumber) (image \(id)): repeats row \(first), the same cell; counted once")
                continue
            }
            firstRow[id, default: [:]][annotation] = lineNumber
            let mask: Mask
            do { mask = try KaggleRLE.decode(fields[annC], width: w, height: h) } catch {
                fail(id, "\(error)")
                continue
            }
            if var image = byID[id] {
                guard image.width == w, image.height == h else {
                    fail(id, "size \(w)x\(h) differs from the image's earlier rows (\(image.width)x\(image.height))")
                    continue
                }
                guard image.cellType == cellType else {
                    fail(id, "cell type '\(cellType ?? "")' differs from the image's earlier rows ('\(image.cellType ?? "")')")
                    continue
                }
                if !mask.isEmpty { image.masks.append(mask) }
                byID[id] = image
            } else {
                order.append(id)
                // An empty annotation lists an image without cells.
                byID[id] = TruthImage(id: id, width: w, height: h, cellType: cellType, masks: mask.isEmpty ? [] : [mask])
            }
        }
        return GroundTruth(images: order.filter { !broken.contains($0) }.compactMap { byID[$0] }, errors: errors, repeats: repeats)
    }

    /// A COCO instances file: segmentations as compressed RLE strings, uncompressed RLE counts,
    /// or polygons. An image is keyed by its file name without extension (the Kaggle id).
    public static func parseCOCO(_ data: Data, file: String) throws -> GroundTruth {
        let root: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TruthFileError(file: file, reason: "the top level is not a JSON object")
            }
            root = object
        } catch let e as TruthFileError { throw e } catch {
            throw TruthFileError(file: file, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let images = root["images"] as? [[String: Any]] else {
            throw TruthFileError(file: file, reason: "no 'images' list")
        }
        let annotations = root["annotations"] as? [[String: Any]] ?? []
        var categories: [Int: String] = [:]
        for c in root["categories"] as? [[String: Any]] ?? [] {
            if let id = intValue(c["id"]), let name = c["name"] as? String { categories[id] = name }
        }

        var errors: [TruthError] = []
        var order: [String] = []
        var byID: [String: TruthImage] = [:]
        for (i, image) in images.enumerated() {
            guard let id = key(image["id"]), let w = intValue(image["width"]), let h = intValue(image["height"]),
                  w > 0, h > 0, w <= 1 << 16, h <= 1 << 16 else {
                errors.append(TruthError(file: file, location: "image \(i)", image: nil, reason: "needs an id, and width and height from 1 to 65536"))
                continue
            }
            guard byID[id] == nil else {
                errors.append(TruthError(file: file, location: "image \(i)", image: id, reason: "a second image with id \(id)"))
                continue
            }
            // The image's name without extension: a path in the plate folder as plateseg's export
            // writes it, or the Kaggle id; an absolute path is named by its file (ids may be numbers).
            var name = id
            if let fileName = image["file_name"] as? String, !fileName.isEmpty {
                name = PathName.withoutExtension(fileName.hasPrefix("/") ? PathName.file(fileName) : fileName)
            }
            order.append(id)
            byID[id] = TruthImage(id: name, width: w, height: h, cellType: image["cell_type"] as? String, masks: [])
        }
        var broken: Set<String> = []
        var typeVotes: [String: [String: Int]] = [:]
        var repeats: [String] = []
        var first: [String: [String: String]] = [:]
        for (i, ann) in annotations.enumerated() {
            let location = "annotation \(i)" + (key(ann["id"]).map { " (id \($0))" } ?? "")
            guard let imageID = key(ann["image_id"]), let image = byID[imageID] else {
                errors.append(TruthError(file: file, location: location, image: nil, reason: "image_id names no image of the file"))
                continue
            }
            // Only an array or an object can be written back (anything else traps, not throws);
            // a segmentation of another kind is refused below.
            let shape = (ann["segmentation"]).flatMap { JSONSerialization.isValidJSONObject($0) ? $0 : nil }
                .flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) }
                .map { String(decoding: $0, as: UTF8.self) }
            if let shape, let earlier = first[imageID]?[shape] {
                repeats.append("\(file), \(location) (image \(image.id)): repeats \(earlier), the same cell; counted once")
                continue
            }
            if let shape { first[imageID, default: [:]][shape] = location }
            do {
                let mask = try cocoMask(ann["segmentation"], width: image.width, height: image.height)
                byID[imageID]?.masks.append(mask)
                if let c = intValue(ann["category_id"]), let name = categories[c] { typeVotes[imageID, default: [:]][name, default: 0] += 1 }
            } catch {
                errors.append(TruthError(file: file, location: location, image: image.id, reason: "\(error)"))
                broken.insert(imageID)
            }
        }
        for (id, votes) in typeVotes where byID[id]?.cellType == nil {
            byID[id]?.cellType = votes.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
        }
        return GroundTruth(images: order.filter { !broken.contains($0) }.compactMap { byID[$0] }, errors: errors, repeats: repeats)
    }

    private static func cocoMask(_ segmentation: Any?, width: Int, height: Int) throws -> Mask {
        if let rle = segmentation as? [String: Any] {
            var (w, h) = (width, height)
            if let size = rle["size"] {
                guard let pair = size as? [Any], pair.count == 2, let sh = intValue(pair[0]), let sw = intValue(pair[1]) else {
                    throw RLEError("segmentation RLE 'size' is not [height, width]")
                }
                (w, h) = (sw, sh)
            }
            guard w == width, h == height else {
                throw RLEError("RLE size \(w)x\(h) differs from its image's \(width)x\(height)")
            }
            if let s = rle["counts"] as? String { return try COCORLE(compressed: s, width: w, height: h).mask() }
            if let list = rle["counts"] as? [Any] {
                let counts = try list.map { v -> Int in
                    guard let n = intValue(v) else { throw RLEError("counts hold a non-integer '\(v)'") }
                    return n
                }
                return try COCORLE(width: w, height: h, counts: counts).mask()
            }
            throw RLEError("segmentation RLE has no 'counts' string or list")
        }
        if let polygons = segmentation as? [Any] {
            let rings = try polygons.map { ring -> [Double] in
                guard let values = ring as? [Any] else { throw RLEError("a polygon is not a list of numbers") }
                let numbers = try values.map { v -> Double in
                    guard let n = v as? NSNumber, n.doubleValue.isFinite, abs(n.doubleValue) < 1e7 else {
                        throw RLEError("a polygon holds '\(v)', not a pixel coordinate")
                    }
                    return n.doubleValue
                }
                guard numbers.count >= 6, numbers.count % 2 == 0 else {
                    throw RLEError("a polygon has \(numbers.count) numbers; needs x,y pairs and at least 3 points")
                }
                return numbers
            }
            return rasterize(polygons: rings, width: width, height: height)
        }
        throw RLEError("no segmentation (expected an RLE object or a list of polygons)")
    }

    /// Pixels whose centre lies inside the polygons (even-odd rule over all rings).
    static func rasterize(polygons: [[Double]], width: Int, height: Int) -> Mask {
        var minX = Double.infinity, minY = Double.infinity, maxX = -Double.infinity, maxY = -Double.infinity
        for ring in polygons {
            for i in stride(from: 0, to: ring.count, by: 2) {
                minX = min(minX, ring[i]); maxX = max(maxX, ring[i])
                minY = min(minY, ring[i + 1]); maxY = max(maxY, ring[i + 1])
            }
        }
        let x0 = max(0, Int(minX.rounded(.down))), x1 = min(width, Int(maxX.rounded(.up)) + 1)
        let y0 = max(0, Int(minY.rounded(.down))), y1 = min(height, Int(maxY.rounded(.up)) + 1)
        guard x1 > x0, y1 > y0 else { return Mask(imageWidth: width, imageHeight: height) }
        let window = PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        var bits = [UInt8](repeating: 0, count: window.area)
        var crossings: [Double] = []
        for y in y0..<y1 {
            let cy = Double(y) + 0.5
            crossings.removeAll(keepingCapacity: true)
            for ring in polygons {
                let n = ring.count / 2
                for i in 0..<n {
                    let ax = ring[2 * i], ay = ring[2 * i + 1]
                    let bx = ring[2 * ((i + 1) % n)], by = ring[2 * ((i + 1) % n) + 1]
                    if (ay <= cy) != (by <= cy) { crossings.append(ax + (cy - ay) / (by - ay) * (bx - ax)) }
                }
            }
            crossings.sort()
            for k in stride(from: 0, to: crossings.count - 1, by: 2) {
                // Pixel x is inside when its centre x + 0.5 lies in [left, right).
                let first = max(x0, Int((crossings[k] - 0.5).rounded(.up)))
                let last = min(x1, Int((crossings[k + 1] - 0.5).rounded(.up)))
                if last > first { for x in first..<last { bits[(y - y0) * window.width + x - x0] = 1 } }
            }
        }
        return Mask(imageWidth: width, imageHeight: height, window: window, bits: bits)
    }

    /// COCO ids are integers in most files and Kaggle id strings in some.
    private static func key(_ v: Any?) -> String? {
        if let s = v as? String { return s.isEmpty ? nil : s }
        return intValue(v).map(String.init)
    }

    private static func intValue(_ v: Any?) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        return d == d.rounded() && abs(d) < 1e15 ? Int(d) : nil
    }
}
