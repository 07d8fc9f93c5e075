import ArgumentParser
import Foundation
import JobStore

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the cells to a file: CSV (one row per cell, mask as COCO RLE) or COCO json (loads in pycocotools).")

    enum Format: String, ExpressibleByArgument { case csv, coco }

    @OptionGroup var store: StoreOptions
    @Option var plate: String?
    @Option(help: ArgumentHelp("Only this time point.", valueName: "label")) var timepoint: String?
    @Option var format: Format = .csv
    @Option(help: "Output file.") var out: String

    static let categories = ["shsy5y", "astro", "cort"]

    func run() throws {
        let db = try store.open(mustExist: true)
        let cells = try db.cells(CellQuery(plate: plate, timepoint: timepoint.map { TimePoint(parsing: $0)?.label ?? $0 }))
        let data: Data
        switch format {
        case .csv:
            var text = (CellColumns.header + ["rle"]).joined(separator: ",") + "\n"
            for c in cells { text += (CellColumns.row(c) + [c.cell.rle]).joined(separator: ",") + "\n" }
            data = Data(text.utf8)
        case .coco:
            data = try coco(cells)
        }
        do { try data.write(to: URL(fileURLWithPath: out)) } catch {
            throw ValidationError("\(out): cannot write (\(error.localizedDescription))")
        }
        print("wrote \(cells.count) cells to \(out)")
    }

    private func coco(_ cells: [LocatedCell]) throws -> Data {
        var imageIDs: [String: Int] = [:]
        var images: [[String: Any]] = []
        var annotations: [[String: Any]] = []
        for c in cells {
            let imageID: Int
            if let id = imageIDs[c.imagePath] { imageID = id } else {
                imageID = imageIDs.count + 1
                imageIDs[c.imagePath] = imageID
                images.append(["id": imageID, "file_name": (c.imagePath as NSString).lastPathComponent,
                               "width": c.imageWidth, "height": c.imageHeight,
                               "plate": c.plate, "well": c.well ?? "", "field": c.field ?? 0,
                               "timepoint": c.timepoint?.label ?? "", "channel": c.channel ?? ""])
            }
            annotations.append([
                "id": annotations.count + 1, "image_id": imageID,
                "category_id": (Self.categories.firstIndex(of: c.cell.cellType) ?? Self.categories.count) + 1,
                "segmentation": ["size": [c.imageHeight, c.imageWidth], "counts": c.cell.rle],
                "area": c.cell.area, "bbox": [c.cell.box.x, c.cell.box.y, c.cell.box.width, c.cell.box.height],
                "score": c.cell.score, "iscrowd": 0,
            ])
        }
        let categories = Self.categories.enumerated().map { ["id": $0.offset + 1, "name": $0.element] as [String: Any] }
        return try JSONSerialization.data(withJSONObject: ["images": images, "annotations": annotations, "categories": categories],
                                          options: [.sortedKeys])
    }
}
