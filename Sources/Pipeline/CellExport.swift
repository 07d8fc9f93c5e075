import Ensemble
import Foundation
import Imaging
import JobStore

/// The cells of a plate (or of every plate) written to files, read from the database a few
/// hundred fields at a time, so that memory stays bounded whatever the plate's size. Each file is
/// written under a hidden name and renamed into place when complete.
public struct ExportError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

public enum CellExport {
    public enum Format: String, Sendable, CaseIterable {
        case csv, coco, labels
    }

    /// The categories of COCO files, in id order (1, 2, 3).
    public static let categories = EnsembleConfig.cellTypes

    /// The columns of a cell's row in `query --cells` and the CSV export (which adds `rle`).
    public static let header = ["plate", "well", "field", "timepoint", "channel", "image", "cell_type", "score", "area", "box_x", "box_y",
                                "box_width", "box_height", "centroid_x", "centroid_y"]

    /// `image` is the image's path relative to its plate's folder: one name per image.
    public static func row(_ c: LocatedCell, image: String) -> [String] {
        [c.plate, c.well ?? "", c.field.map(String.init) ?? "", c.timepoint?.label ?? "", c.channel ?? "", image, c.cell.cellType,
         fixed(c.cell.score, 4), "\(c.cell.area)", "\(c.cell.box.x)", "\(c.cell.box.y)", "\(c.cell.box.width)",
         "\(c.cell.box.height)", fixed(c.cell.centroid.x, 2), fixed(c.cell.centroid.y, 2)]
    }

    /// `x` with `decimals` digits after the point, rounded half away from zero: what
    /// `String(format: "%.4f")` gives (but for ties of the binary value), without Foundation's
    /// formatter, which is a tenth of an export's time.
    static func fixed(_ x: Double, _ decimals: Int) -> String {
        guard x.isFinite else { return String(format: "%.\(decimals)f", x) }
        var scale = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(x) * Double(scale)).rounded()
        guard scaled < 1e15 else { return String(format: "%.\(decimals)f", x) }
        let n = Int(scaled)
        let fraction = String(n % scale)
        let sign = x.sign == .minus ? "-" : ""
        return sign + String(n / scale) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    /// Writes the query's cells to `path` (a file; for `labels` a folder) and returns how many.
    public static func write(_ format: Format, from db: any JobStore, _ q: CellQuery, to path: String) throws -> Int {
        let output = try StagedOutput(path, folder: format == .labels)
        do {
            let roots = Dictionary(try db.plates().map { ($0.name, $0.root) }, uniquingKeysWith: { a, _ in a })
            let name: (LocatedCell) -> String = { relativePath($0.imagePath, root: roots[$0.plate] ?? "") }
            let count: Int
            switch format {
            case .csv: count = try csv(db, q, to: output.staging, name: name)
            case .coco: count = try coco(db, q, to: output.staging, name: name)
            case .labels: count = try labels(db, q, into: output.staging, roots: roots)
            }
            try output.commit()
            return count
        } catch {
            output.discard()
            // Named by what the user asked for, not the hidden name it was written under.
            throw ExportError("\(error)".replacingOccurrences(of: output.staging.path, with: output.final.path))
        }
    }

    private static func handle(_ url: URL) throws -> FileHandle {
        do { return try FileHandle(forWritingTo: url) } catch {
            throw CSVOutputError("\(url.path): cannot write (\(error.localizedDescription))")
        }
    }

    private static func csv(_ db: any JobStore, _ q: CellQuery, to url: URL, name: (LocatedCell) -> String) throws -> Int {
        let file = try handle(url)
        defer { try? file.close() }
        let csv = try CSVOutput(file, name: url.path)
        try csv.write(header + ["rle"])
        var count = 0
        try db.forEachCell(q) { c in
            try csv.write(row(c, image: name(c)) + [c.cell.rle])
            count += 1
        }
        try csv.finish()
        return count
    }

    private struct COCOImage: Encodable {
        var id: Int
        var file_name: String
        var width: Int
        var height: Int
        var plate: String
        var well: String
        var field: Int
        var timepoint: String
        var channel: String
    }

    private struct COCOAnnotation: Encodable {
        struct Segmentation: Encodable {
            var size: [Int]
            var counts: String
        }
        var id: Int
        var image_id: Int
        var category_id: Int
        var segmentation: Segmentation
        var area: Int
        var bbox: [Int]
        var score: Double
        var iscrowd: Int
    }

    /// Annotations are written as they are read; the images (one small record per field) follow
    /// them, so that the file is one pass over the cells.
    private static func coco(_ db: any JobStore, _ q: CellQuery, to url: URL, name: (LocatedCell) -> String) throws -> Int {
        let file = try handle(url)
        defer { try? file.close() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var pending = Data()
        func put(_ data: Data) throws {
            pending.append(data)
            if pending.count >= 1 << 20 { try flush() }
        }
        func flush() throws {
            do { try file.write(contentsOf: pending) } catch {
                throw CSVOutputError("\(url.path): cannot write (\(error.localizedDescription))")
            }
            pending.removeAll(keepingCapacity: true)
        }
        let categoryList = categories.enumerated().map { "{\"id\":\($0.offset + 1),\"name\":\"\($0.element)\"}" }.joined(separator: ",")
        try put(Data("{\"categories\":[\(categoryList)],\"annotations\":[".utf8))
        var images: [COCOImage] = []
        var imageIDs: [String: Int] = [:]
        var count = 0
        try db.forEachCell(q) { c in
            let key = "\(c.plate)\u{0}\(c.imagePath)"
            let imageID: Int
            if let id = imageIDs[key] { imageID = id } else {
                imageID = images.count + 1
                imageIDs[key] = imageID
                images.append(COCOImage(id: imageID, file_name: name(c), width: c.imageWidth, height: c.imageHeight, plate: c.plate,
                                        well: c.well ?? "", field: c.field ?? 0, timepoint: c.timepoint?.label ?? "", channel: c.channel ?? ""))
            }
            count += 1
            let annotation = COCOAnnotation(
                id: count, image_id: imageID, category_id: (categories.firstIndex(of: c.cell.cellType) ?? categories.count) + 1,
                segmentation: .init(size: [c.imageHeight, c.imageWidth], counts: c.cell.rle), area: c.cell.area,
                bbox: [c.cell.box.x, c.cell.box.y, c.cell.box.width, c.cell.box.height], score: c.cell.score, iscrowd: 0)
            if count > 1 { try put(Data(",".utf8)) }
            try put(try encoder.encode(annotation))
        }
        try put(Data("],\"images\":[".utf8))
        for (i, image) in images.enumerated() {
            if i > 0 { try put(Data(",".utf8)) }
            try put(try encoder.encode(image))
        }
        try put(Data("]}\n".utf8))
        try flush()
        return count
    }

    /// One label TIFF per field, at the field's path relative to its plate (under a folder per
    /// plate), and `cells.csv`: which label of which file is which cell.
    private static func labels(_ db: any JobStore, _ q: CellQuery, into folder: URL, roots: [String: String]) throws -> Int {
        let table = folder.appendingPathComponent("cells.csv")
        _ = FileManager.default.createFile(atPath: table.path, contents: nil)
        let file = try handle(table)
        defer { try? file.close() }
        let csv = try CSVOutput(file, name: table.path)
        try csv.write(["label_file", "label"] + header)
        var count = 0
        let images = try db.images(q)
        for start in stride(from: 0, to: images.count, by: 64) {
            let batch = Array(images[start..<min(start + 64, images.count)])
            let cells = try db.cells(ofImages: batch.map(\.id), cellType: q.cellType)
            for image in batch {
                let relative = relativePath(image.path, root: roots[image.plate] ?? "")
                let labelFile = "\(PlateReport.fileSafe(image.plate))/\(PathName.withoutExtension(relative)).tif"
                let url = folder.appendingPathComponent(labelFile)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                var picture = LabelImage(width: image.width, height: image.height)
                for (i, cell) in (cells[image.id] ?? []).enumerated() {
                    try picture.paint(COCORLE(compressed: cell.rle, width: image.width, height: image.height), label: UInt32(i + 1))
                    let located = LocatedCell(plate: image.plate, well: image.well, field: image.field, timepoint: image.timepoint,
                                              channel: image.channel, imagePath: image.path, imageWidth: image.width,
                                              imageHeight: image.height, cell: cell)
                    try csv.write([labelFile, "\(i + 1)"] + row(located, image: relative))
                    count += 1
                }
                try picture.writeTIFF(to: url.path)
            }
        }
        try csv.finish()
        return count
    }
}
