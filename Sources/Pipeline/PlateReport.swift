import Ensemble
import Foundation
import Imaging
import JobStore

/// The HTML report of plates: one self-contained folder that opens offline. Its first page holds
/// each plate's map (one per time point behind a slider), growth curves, a row per well, what
/// failed and why, and what made the results; a page per well shows its fields as thumbnails
/// with the cells outlined, and full-size overlays where they were asked for. Sized for a
/// facility: a 384-well plate of 9 fields is a few thousand thumbnails of a few tens of KB.
public enum PlateReport {
    /// Which plates: the newest submitted, one by name, or every plate.
    public enum Plates: Sendable, Equatable {
        case newest, named(String), all
    }

    /// Where full-size overlays are drawn besides the thumbnails: every field, the fields of
    /// some wells, none, or (`automatic`) every field of a report of at most `smallReportFields`.
    public enum FullOverlays: Sendable, Equatable {
        case automatic, all, none, wells(Set<String>)

        /// `all`, `none`, or wells (`B03,C04`); nil: `automatic`.
        public init(parsing text: String?) throws {
            switch text?.lowercased() {
            case nil: self = .automatic
            case "all": self = .all
            case "none": self = .none
            case let wells?:
                self = .wells(Set(try wells.split(separator: ",").map { name in
                    guard let well = WellName.normalized(String(name)) else {
                        throw FilterError("--overlays \(wells): \(name) is not a well name like B03; give all, none, or wells")
                    }
                    return well
                }))
            }
        }
    }

    public static let thumbnailSide = 240
    public static let smallReportFields = 96

    /// Writes the report into `path` (replacing a report there) and returns its index.html.
    public static func write(from db: any JobStore, plates choice: Plates, to path: String, modelsDir: String,
                             overlays: FullOverlays = .automatic) throws -> URL {
        let plates = try choose(choice, in: db)
        let output = try StagedOutput(path, folder: true)
        do {
            try write(db, plates: plates, into: output.staging, modelsDir: modelsDir, overlays: overlays)
            try output.commit()
        } catch {
            output.discard()
            throw error
        }
        return output.final.appendingPathComponent("index.html")
    }

    static func choose(_ choice: Plates, in db: any JobStore) throws -> [PlateInfo] {
        let all = try db.plates()
        switch choice {
        case .all:
            guard !all.isEmpty else { throw ReportError("no plates in \(db.location)") }
            return all.sorted { $0.name < $1.name }
        case .newest:
            guard let newest = all.last else { throw ReportError("no plates in \(db.location)") }
            return [newest]
        case let .named(name):
            guard let plate = all.first(where: { $0.name == name }) else {
                let names = all.map(\.name).sorted()
                let known = names.isEmpty ? "it holds none" : "its plates are " + (names.count <= 10 ? names : Array(names.prefix(10)) + ["…"]).joined(separator: ", ")
                throw ReportError("no plate \(name) in \(db.location); \(known)")
            }
            return [plate]
        }
    }

    private static func write(_ db: any JobStore, plates: [PlateInfo], into folder: URL, modelsDir: String, overlays: FullOverlays) throws {
        let sections = try plates.map { plate in
            (plate, try db.progress(plate: plate.name).first!, try db.images(plate: plate.name).filter { $0.segmented && $0.error == nil })
        }
        let fields = sections.reduce(0) { $0 + $1.2.count }
        let full: FullOverlays = overlays == .automatic ? (fields <= smallReportFields ? .all : .none) : overlays
        var html = ReportPage.head(title: "plateseg report — \(plates.map(\.name).joined(separator: ", "))")
        for (plate, progress, images) in sections {
            let pictures = try FieldPictures.draw(images, plate: plate, from: db, into: folder, full: full)
            let counts = try db.wellCounts(CellQuery(plate: plate.name))
            let failed = try db.failedJobs(plate: plate.name, limit: 500)
            let unreadable = try db.unreadableImages(plate: plate.name)
            let wells = Dictionary(grouping: images, by: { $0.well ?? "?" })
            for (well, inWell) in wells {
                let page = ReportPage.wellPage(plate: plate, well: well, images: inWell, counts: counts.filter { $0.well == well },
                                               pictures: pictures, fullAskedFor: full)
                let url = folder.appendingPathComponent(ReportPage.wellPath(plate: plate.name, well: well))
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try page.write(to: url, atomically: false, encoding: .utf8)
            }
            html += ReportPage.plateSection(plate: plate, progress: progress, counts: counts, wells: Set(wells.keys),
                                            gallery: fields <= smallReportFields ? images : [], pictures: pictures,
                                            failed: failed, unreadable: unreadable)
        }
        let staleByPlate = try StaleResults.find(in: db, plates: plates.map(\.name), modelsDir: modelsDir)
        let stale = plates.compactMap { p in
            staleByPlate[p.name].map { $0.describe(plate: p.name) + " than those listed below: `plateseg run --redo-stale` runs them again." }
        }
        html += ReportPage.provenance(try plates.map { ($0.name, try db.provenanceRecords(plate: $0.name)) }, stale: stale)
        html += ReportPage.models(try ModelsFolder(modelsDir).files())
        html += ReportPage.foot
        try html.write(to: folder.appendingPathComponent("index.html"), atomically: false, encoding: .utf8)
    }

    /// Plate and image names may hold any character, a slash included; a file name may not.
    static func fileSafe(_ name: String) -> String {
        String(name.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0) ? Character($0) : "_" })
    }
}

/// A report that cannot be written; one line.
public struct ReportError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// An image's id in annotations and reports: its file name without the extension.
public func imageID(of path: String) -> String {
    PathName.stem(path)
}

/// An image's path relative to its plate's folder: the name a user reads and gives.
public func relativePath(_ path: String, root: String) -> String {
    let prefix = root.hasSuffix("/") ? root : root + "/"
    return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path
}

/// A field's pictures in the report, or why it has none.
enum FieldPicture: Sendable {
    /// Paths relative to the report's folder; `overlay` nil when no full-size one was asked for.
    case drawn(thumbnail: String, overlay: String?)
    case notDrawn(String)
}

/// The fields' thumbnails and overlays, drawn from the stored cells over the image files as they
/// are now: read in batches, drawn on every core.
enum FieldPictures {
    static func draw(_ images: [StoredImage], plate: PlateInfo, from db: any JobStore, into folder: URL,
                     full: PlateReport.FullOverlays) throws -> [Int64: FieldPicture] {
        let merged = images.filter { $0.mergeState == .succeeded }
        let safePlate = PlateReport.fileSafe(plate.name)
        for sub in ["thumbs", "overlays"] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("\(sub)/\(safePlate)"), withIntermediateDirectories: true)
        }
        var pictures: [Int64: FieldPicture] = [:]
        let batch = 64
        for start in stride(from: 0, to: merged.count, by: batch) {
            let part = Array(merged[start..<min(start + batch, merged.count)])
            let cells = try db.cells(ofImages: part.map(\.id), cellType: nil)
            let drawn = concurrentMap(part.count) { i -> FieldPicture in
                let image = part[i]
                let name = "\(image.id)-\(PlateReport.fileSafe(imageID(of: image.path))).png"
                let wantsFull: Bool
                switch full {
                case .all: wantsFull = true
                case .none, .automatic: wantsFull = false
                case let .wells(wells): wantsFull = image.well.map(wells.contains) ?? false
                }
                return draw(image, cells: cells[image.id] ?? [], in: folder, thumbnail: "thumbs/\(safePlate)/\(name)",
                            overlay: wantsFull ? "overlays/\(safePlate)/\(name)" : nil)
            }
            for (image, picture) in zip(part, drawn) { pictures[image.id] = picture }
        }
        return pictures
    }

    static func draw(_ image: StoredImage, cells: [CellRecord], in folder: URL, thumbnail: String, overlay: String?) -> FieldPicture {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: image.path)) } catch {
            return .notDrawn("\(image.path) cannot be read: \(error.localizedDescription)")
        }
        guard ContentHash.of(bytes) == image.contentHash else {
            return .notDrawn("\(image.path) changed since it was segmented")
        }
        do {
            let samples = try ImageFile.decode(bytes, name: image.path, page: image.page ?? 0)
            // 8-bit fields as they are; 16-bit ones stretched between their own 0.1st and 99.9th
            // percentiles, so that the cells are visible whatever the camera's range.
            let display = IntensityRule.matched(IntensityReference(lowPercentile: 0.1, highPercentile: 99.9, lowValue: 0, highValue: 255,
                                                                   images: 0, source: "display"))
            let gray = samples.bitDepth == 8 ? IntensityRule.none.apply(samples) : display.apply(samples)
            var labels = LabelImage(width: gray.width, height: gray.height)
            for (i, cell) in cells.enumerated() {
                try labels.paint(COCORLE(compressed: cell.rle, width: gray.width, height: gray.height), label: UInt32(i + 1))
            }
            let picture = CellPicture(image: gray, labels: labels, cellTypes: cells.map(\.cellType))
            try picture.writeThumbnail(side: PlateReport.thumbnailSide, to: folder.appendingPathComponent(thumbnail).path)
            if let overlay { try picture.writeOverlay(to: folder.appendingPathComponent(overlay).path) }
            return .drawn(thumbnail: thumbnail, overlay: overlay)
        } catch {
            return .notDrawn("\(error)")
        }
    }
}
