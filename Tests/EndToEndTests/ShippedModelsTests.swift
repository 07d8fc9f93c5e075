import Foundation
import Imaging
import PlateFixtures
import Testing

/// The shipped networks on real demo fields delivered as instruments deliver them: dimmed and
/// flat, stitched into one large field, or imaged at twice the magnification. Each is compared
/// with the same fields run as they are (one run, shared by the tests).
@Suite(.serialized) struct ShippedModelsTests {
    /// The demo's four fields of cortical neurons (wells D02, D03): one culture, as the fields of
    /// one large field are. The mosaic puts them in this order left to right, top to bottom.
    static let fields = ["0323e81d23d9", "053d61766edb", "083b178bb184", "097d60b2cf71"]
    static let work = temporaryFolder("plateseg-e2e-shipped")
    static let models = repositoryRoot.appendingPathComponent("models").path
    static let original: Result<Segmented, any Error> = Result {
        let folder = work.appendingPathComponent("original")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for id in fields {
            try FileManager.default.copyItem(at: demo.appendingPathComponent("plate/\(id).png"), to: folder.appendingPathComponent("\(id).png"))
        }
        return try segment(folder, name: "original")
    }

    /// A plate's stored cells by image file name, and where its database is.
    struct Segmented {
        var db: String
        var cells: [String: [Mask]]
    }

    static func segment(_ folder: URL, name: String, _ extra: [String] = []) throws -> Segmented {
        let db = work.appendingPathComponent("\(name).sqlite").path
        _ = try run(products.appendingPathComponent("plateseg"),
                    ["run", folder.path, "--plate", name, "--workers", "2", "--db", db, "--models-dir", models] + extra)
        let csv = work.appendingPathComponent("\(name).csv").path
        _ = try run(products.appendingPathComponent("plateseg"), ["export", "--db", db, "--out", csv])
        var cells: [String: [Mask]] = [:]
        for line in try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst() {
            let c = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let gray = try PNGCodec.readHeader(folder.appendingPathComponent(c[5]).path)
            cells[c[5], default: []].append(try COCORLE(compressed: c[15], width: gray.width, height: gray.height).mask())
        }
        return Segmented(db: db, cells: cells)
    }

    static func ensembleScore(_ db: String) throws -> Double {
        let eval = try run(products.appendingPathComponent("plateseg"),
                           ["eval", "--db", db, "--truth", demo.appendingPathComponent("truth.csv").path, "--models-dir", models])
        let row = try #require(eval.split(separator: "\n").first { $0.hasPrefix("ensemble ") }, "\(eval)")
        return try #require(Double(row.split(separator: " ")[2]))
    }

    /// The share of `reference` cells that have a cell in `found` at IoU above `iou`.
    static func matched(_ reference: [Mask], in found: [Mask], iou: Double) -> Double {
        guard !reference.isEmpty else { return 1 }
        return Double(reference.filter { r in found.contains { $0.iou(r) > iou } }.count) / Double(reference.count)
    }

    /// Without the rule (`--intensity none`) the networks find 1 of the dimmed copy's 155
    /// annotated cells (score 0.004); with it, the copy scores like the original.
    @Test func aDimmedLowContrastCopyScoresWithinTwoHundredthsOfTheOriginal() throws {
        let folder = Self.work.appendingPathComponent("dimmed")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for id in Self.fields {
            var gray = try PNGCodec.readGray(demo.appendingPathComponent("plate/\(id).png").path)
            // A third of the contrast, around a dark level: 0…255 becomes 20…105.
            gray.pixels = gray.pixels.map { UInt8((Double($0) / 3 + 20).rounded()) }
            try PNGCodec.writeGray(gray, to: folder.appendingPathComponent("\(id).png").path)
        }
        let plain = try Self.ensembleScore(try Self.original.get().db)
        let dim = try Self.ensembleScore(try Self.segment(folder, name: "dimmed").db)
        print("shipped models, demo fields: ensemble score \(plain) as they are, \(dim) dimmed")
        #expect(plain > 0.1, "the shipped networks find the demo's cells")
        #expect(abs(dim - plain) <= 0.02, "original \(plain), dimmed \(dim)")
    }

    /// Four fields as one 1408x1040 field, cut into 512-pixel tiles whose seams run through the
    /// fields: the cells away from the joins between fields are those the fields gave alone,
    /// the ones crossing a tile seam included (a cell cut in two would match at neither half).
    @Test func aMosaicFieldIsStitchedWithoutSeams() throws {
        let original = try Self.original.get()
        let (w, h) = (704, 520)
        var mosaic = GrayImage(width: 2 * w, height: 2 * h)
        for (i, id) in Self.fields.enumerated() {
            let gray = try PNGCodec.readGray(demo.appendingPathComponent("plate/\(id).png").path)
            for y in 0..<h { for x in 0..<w { mosaic[x + (i % 2) * w, y + (i / 2) * h] = gray[x, y] } }
        }
        let folder = Self.work.appendingPathComponent("mosaic")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try PNGCodec.writeGray(mosaic, to: folder.appendingPathComponent("mosaic.png").path)
        let found = try Self.segment(folder, name: "mosaic", ["--tile", "512", "--overlap", "96"]).cells["mosaic.png"] ?? []
        let tiles = TileLayout(size: 512, overlap: 96).tiles(width: 2 * w, height: 2 * h)
        let seamsX = Set(tiles.flatMap { [$0.x, $0.maxX] }).filter { $0 > 0 && $0 < 2 * w }
        let seamsY = Set(tiles.flatMap { [$0.y, $0.maxY] }).filter { $0 > 0 && $0 < 2 * h }
        let margin = 48
        var away: [Mask] = [], crossing: [Mask] = []
        for (i, id) in Self.fields.enumerated() {
            let (dx, dy) = ((i % 2) * w, (i / 2) * h)
            for cell in original.cells["\(id).png"] ?? [] {
                // Away from the joins: the cell's box stays `margin` pixels from the sides a
                // neighbouring field touches.
                let b = cell.box
                let nearJoin = (i % 2 == 0 && b.maxX > w - margin) || (i % 2 == 1 && b.x < margin)
                    || (i / 2 == 0 && b.maxY > h - margin) || (i / 2 == 1 && b.y < margin)
                guard !nearJoin else { continue }
                let moved = Mask(imageWidth: 2 * w, imageHeight: 2 * h,
                                 window: PixelRect(x: b.x + dx, y: b.y + dy, width: b.width, height: b.height), bits: cell.bits)
                away.append(moved)
                let m = moved.box
                if seamsX.contains(where: { m.x < $0 && $0 < m.maxX }) || seamsY.contains(where: { m.y < $0 && $0 < m.maxY }) {
                    crossing.append(moved)
                }
            }
        }
        let share = Self.matched(away, in: found, iou: 0.5), seamShare = Self.matched(crossing, in: found, iou: 0.5)
        print("mosaic: \(away.count) cells away from the joins, \(Int(share * 100)) % found again at IoU > 0.5; \(crossing.count) crossing a tile seam, \(Int(seamShare * 100)) %")
        #expect(away.count >= 100 && crossing.count >= 8)
        #expect(share >= 0.9 && seamShare >= 0.9)
    }

    /// The fields at twice the magnification (0.62 µm per pixel against the training images'
    /// 1.24): with --pixel-size they are resized to the networks' scale and the cells come back
    /// in the large field's pixels, where they cover the cells of the fields run as they are.
    @Test func fieldsOfTwiceTheMagnificationAreResizedAndMappedBack() throws {
        let original = try Self.original.get()
        let folder = Self.work.appendingPathComponent("twice")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for id in Self.fields {
            let gray = try PNGCodec.readGray(demo.appendingPathComponent("plate/\(id).png").path)
            try PNGCodec.writeGray(gray.resampled(width: 2 * gray.width, height: 2 * gray.height), to: folder.appendingPathComponent("\(id).png").path)
        }
        let twice = try Self.segment(folder, name: "twice", ["--pixel-size", "0.62"])
        var reference: [Mask] = [], found: [Mask] = []
        for id in Self.fields {
            reference += (original.cells["\(id).png"] ?? []).map { $0.rescaled(imageWidth: 1408, imageHeight: 1040) }
            found += twice.cells["\(id).png"] ?? []
            #expect(twice.cells["\(id).png"]?.allSatisfy { $0.imageWidth == 1408 && $0.imageHeight == 1040 } == true)
        }
        let share = Self.matched(reference, in: found, iou: 0.5)
        print("twice the magnification: \(found.count) cells against \(reference.count); \(Int(share * 100)) % found again at IoU > 0.5")
        #expect(share >= 0.9 && abs(found.count - reference.count) <= reference.count / 10)
    }
}
