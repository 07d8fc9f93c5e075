import CTIFF
import Ensemble
import Foundation
import Imaging
import PlateFixtures

/// The seed corpus, from the repository's real files: crops of the demo's phase-contrast fields
/// in the layouts cameras write, rows of the demo's annotations, its manifest, the shipped
/// ensemble config, tensors of a model file, and file names of the imagers plateseg reads.
enum Seeds {
    static func write(to root: URL) throws {
        let repo = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let demo = repo.appendingPathComponent("demo")
        func folder(_ target: String) throws -> URL {
            let dir = root.appendingPathComponent(target)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return dir
        }
        let field = try PNGCodec.readGray(demo.appendingPathComponent("plate/0f08d640930b.png").path)
        let crops = [PixelRect(x: 300, y: 200, width: 64, height: 48), PixelRect(x: 0, y: 0, width: 33, height: 17),
                     PixelRect(x: 500, y: 400, width: 96, height: 72)].map { field.crop($0) }

        let png = try folder("png")
        for (i, crop) in crops.enumerated() { try PNGCodec.writeGray(crop, to: png.appendingPathComponent("demo-crop-\(i).png").path) }
        for name in ["gray16.png", "palette.png", "bilevel.png", "enormous-header.png"] {
            try copy(repo.appendingPathComponent("Tests/ImagingTests/Fixtures/\(name)"), to: png.appendingPathComponent(name))
        }

        let tiff = try folder("tiff")
        let crop = crops[0]
        let eight = crop.pixels
        let sixteen = littleEndian(crop.pixels.map { UInt16($0) * 41 + 7000 })
        let layouts: [(String, TIFFWriter, [UInt8])] = [
            ("8bit-strips.tif", TIFFWriter(bits: 8), eight),
            ("16bit-lzw.tif", TIFFWriter(bits: 16, compression: COMPRESSION_LZW), sixteen),
            ("16bit-deflate-tiled.tif", TIFFWriter(bits: 16, compression: COMPRESSION_ADOBE_DEFLATE, tile: 16), sixteen),
            ("8bit-packbits.tif", TIFFWriter(bits: 8, compression: COMPRESSION_PACKBITS), eight),
            ("16bit-bigtiff.tif", TIFFWriter(bits: 16, bigTIFF: true), sixteen),
        ]
        for (name, writer, samples) in layouts {
            try writer.write([samples], width: crop.width, height: crop.height, to: tiff.appendingPathComponent(name).path)
        }
        try TIFFWriter(bits: 8).write([eight, eight.reversed()], width: crop.width, height: crop.height,
                                      to: tiff.appendingPathComponent("8bit-two-pages.tif").path)

        // The three smallest tensors of a real model file, with their real bytes and metadata.
        let model = try Data(contentsOf: repo.appendingPathComponent("Tests/ModelsTests/Fixtures/yolox.safetensors"))
        let headerLength = Int(model.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian })
        let header = try JSONSerialization.jsonObject(with: model.subdata(in: 8..<8 + headerLength)) as! [String: Any]
        var tensors: [(String, [String: Any], Data)] = []
        for (name, value) in header where name != "__metadata__" {
            let info = value as! [String: Any]
            let offsets = info["data_offsets"] as! [Int]
            tensors.append((name, info, model.subdata(in: 8 + headerLength + offsets[0]..<8 + headerLength + offsets[1])))
        }
        tensors.sort { ($0.2.count, $0.0) < ($1.2.count, $1.0) }
        var small: [String: Any] = ["__metadata__": header["__metadata__"] ?? [String: String]()]
        var bytes = Data()
        for (name, info, data) in tensors.prefix(3) {
            var entry = info
            entry["data_offsets"] = [bytes.count, bytes.count + data.count]
            small[name] = entry
            bytes += data
        }
        var json = try JSONSerialization.data(withJSONObject: small, options: .sortedKeys)
        while json.count % 8 != 0 { json += Data(" ".utf8) }
        var length = UInt64(json.count).littleEndian
        try (Data(bytes: &length, count: 8) + json + bytes).write(to: try folder("safetensors").appendingPathComponent("yolox-three-tensors.safetensors"))

        // Masks of the demo's annotations: the encodings as the truth file and COCO give them.
        let truth = try String(contentsOf: demo.appendingPathComponent("truth.csv"), encoding: .utf8).split(whereSeparator: \.isNewline)
        let rows = truth.dropFirst().prefix(5).map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let masks = try rows.map { try KaggleRLE.decode($0[1], width: 704, height: 520) }
        // Each cell also in an image just larger than itself: a decoded mask is as large as the
        // box its runs span, so mutations of whole-field encodings (runs across many rows) spend
        // their time filling bitmaps; the small image keeps every execution cheap.
        let cellImages = masks.map { mask in
            let pad = 2
            let window = PixelRect(x: mask.box.x - pad, y: mask.box.y - pad, width: mask.box.width + 2 * pad, height: mask.box.height + 2 * pad)
            var bits = [UInt8](repeating: 0, count: window.area)
            for y in 0..<mask.box.height {
                for x in 0..<mask.box.width { bits[(y + pad) * window.width + x + pad] = mask.bits[y * mask.box.width + x] }
            }
            return Mask(imageWidth: window.width, imageHeight: window.height, window: PixelRect(x: 0, y: 0, width: window.width, height: window.height), bits: bits)
        }
        let kaggle = try folder("kaggle-rle"), coco = try folder("coco-rle")
        for (i, row) in rows.enumerated() {
            try Data("704 520\n\(row[1])".utf8).write(to: kaggle.appendingPathComponent("demo-\(i).txt"))
            try Data("704 520\n\(COCORLE(mask: masks[i]).compressedString)".utf8).write(to: coco.appendingPathComponent("demo-\(i).txt"))
            let m = cellImages[i]
            try Data("\(m.imageWidth) \(m.imageHeight)\n\(KaggleRLE.encode(m))".utf8).write(to: kaggle.appendingPathComponent("demo-cell-\(i).txt"))
        }
        try Data((truth.prefix(6).joined(separator: "\n") + "\n").utf8).write(to: try folder("truth-csv").appendingPathComponent("demo.csv"))
        let cellRows = rows.enumerated().map { i, row in
            "\(row[0])\(i % 2),\(KaggleRLE.encode(cellImages[i])),\(cellImages[i].imageWidth),\(cellImages[i].imageHeight),\(row[4])"
        }
        try Data((([String(truth[0])] + cellRows + [cellRows[0]]).joined(separator: "\r\n") + "\r\n").utf8)
            .write(to: try folder("truth-csv").appendingPathComponent("demo-cells.csv"))
        let annotations: [[String: Any]] = masks.enumerated().map { i, mask in
            ["id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentation": ["size": [520, 704], "counts": COCORLE(mask: mask).compressedString]]
        } + [["id": 9, "image_id": 1, "category_id": 1, "segmentation": [[10.0, 10.0, 40.0, 12.0, 30.0, 35.0]]]]
        let cocoJSON: [String: Any] = ["images": [["id": 1, "file_name": "\(rows[0][0]).png", "width": 704, "height": 520]],
                                       "annotations": annotations, "categories": [["id": 1, "name": "cort"]]]
        try JSONSerialization.data(withJSONObject: cocoJSON, options: .sortedKeys)
            .write(to: try folder("truth-coco").appendingPathComponent("demo.json"))

        // A tile's outputs as a network stores them: the crop as a semantic map, boxes and masks.
        let tileRect = PixelRect(x: 300, y: 200, width: 64, height: 48)
        let semantic = ProbabilityMap(channels: 4, width: 64, height: 48,
                                      values: (0..<4).flatMap { c in crop.pixels.map { c == 0 ? 255 - $0 : $0 / UInt8(c + 1) } })
        let detections = [Detection(box: Box(x0: 2, y0: 3, x1: 30, y1: 25), score: 0.9, classProbabilities: [0.1, 0.2, 0.7]),
                          Detection(box: Box(x0: 20, y0: 10, x1: 60, y1: 47), score: 0.4, classProbabilities: [0.5, 0.25, 0.25])]
        let soft = ProbabilityMap(channels: 1, width: 28, height: 28, values: (0..<784).map { UInt8(($0 * 7) % 256) })
        let artifact = try folder("artifact")
        for (name, a) in [("upernet", TileArtifact(model: "upernet", tile: tileRect, classes: ["shsy5y", "astro", "cort"], semantic: semantic)),
                          ("maskrcnn", TileArtifact(model: "maskrcnn", tile: tileRect, classes: ["shsy5y", "astro", "cort"],
                                                    detections: detections, masks: [soft, soft])),
                          ("yolox", TileArtifact(model: "yolox", tile: tileRect, classes: ["shsy5y", "astro", "cort"], detections: detections))] {
            try Data(a.encoded()).write(to: artifact.appendingPathComponent("\(name).psa"))
            try Data(Zstd.decompress(a.encoded(), name: name))
                .write(to: try folder("artifact-payload").appendingPathComponent("\(name).payload"))
        }

        let manifest = try folder("manifest")
        try copy(demo.appendingPathComponent("plate/manifest.csv"), to: manifest.appendingPathComponent("demo.csv"))
        try Data("file,well,field,timepoint,channel,page\nscan1/a.tif,B03,1,00d04h00m,Phase,1\nscan2/a.tif,b3,2,2,,2\n".utf8)
            .write(to: manifest.appendingPathComponent("time-series.csv"))
        try copy(repo.appendingPathComponent("models/ensemble.json"), to: try folder("ensemble-json").appendingPathComponent("shipped.json"))
        for network in ["yolox", "upernet"] {
            try copy(repo.appendingPathComponent("models/\(network).int8.json"), to: try folder("int8-ranges").appendingPathComponent("\(network).json"))
        }
        // Images of two plates (one with subfolders, a name twice) and the ids a truth file names
        // them by: the path with or without extension, the bare name, names of no image.
        try Data("""
            P1 a/x.png
            P1 b/x.png
            P1 b/y.tif
            P2 0f08d640930b.png
            P2 sub dir/z.png
            --
            a/x
            x.png
            b/y
            y
            0f08d640930b
            sub dir/z.png
            /plates/P1/a/x.png
            nothing

            """.utf8).write(to: try folder("truth-names").appendingPathComponent("two-plates.txt"))

        let names = try folder("names")
        for (i, name) in [
            "VID9955_Phase_B3_1_00d04h00m.tif", "VID483_G2_1_2018y08m17d_01h56m.tif",
            "TimePoint_2/PLATE_B02_s1_w1A1B2C3D4-0000-1111-2222-333344445555.tif", "ZStep_3/PLATE_B02_s1_w2_thumb.tif",
            "r02c02f01p01-ch1sk3fk1fl1.tiff", "PLATE_D08_T0001F001L01A01Z01C01.tif", "AS_09125_050116030001_D03f00d0.tif",
            "shsy5y[diff]_A10_4", "astro[hippo]_E10-4_vessel[S]_2", "P1_B02_s1.png",
        ].enumerated() {
            try Data(name.utf8).write(to: names.appendingPathComponent("name-\(i).txt"))
        }
    }

    private static func copy(_ from: URL, to: URL) throws {
        try? FileManager.default.removeItem(at: to)
        try FileManager.default.copyItem(at: from, to: to)
    }
}
