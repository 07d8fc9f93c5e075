import Foundation
import Imaging
import JobStore

/// The HTML report of plates: one self-contained folder (index.html and overlays/) that opens
/// offline: plate maps, growth curves, the per-well table, every field's cells outlined, what
/// failed and why, and what made the results.
public enum PlateReport {
    /// Writes the report of `plate` (or of every plate) into `folder` and returns index.html.
    public static func write(from db: any JobStore, plate: String?, to folder: URL, modelsDir: String) throws -> URL {
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("overlays"), withIntermediateDirectories: true)
        let plates = try db.progress(plate: plate)
        guard !plates.isEmpty else { throw ReportError("no plate \(plate ?? "") in \(db.location)") }
        var html = ReportPage.head(title: "plateseg report — \(plates.map(\.plate).joined(separator: ", "))")
        for p in plates {
            let images = try db.images(plate: p.plate)
            var overlays: [String: OverlayFile] = [:]
            for image in images where image.segmented && image.mergeState == .succeeded {
                let name = "overlays/\(fileSafe(p.plate))-\(image.id)-\(fileSafe(imageID(of: image.path))).png"
                overlays[image.path] = try OverlayFile.draw(image, cells: db.cells(CellQuery(plate: p.plate, image: image.path)),
                                                            to: folder.appendingPathComponent(name), named: name)
            }
            html += ReportPage.plateSection(
                progress: p, counts: try db.wellCounts(CellQuery(plate: p.plate)), images: images, overlays: overlays,
                failed: try db.failedJobs(plate: p.plate, limit: 500), unreadable: try db.unreadableImages(plate: p.plate))
        }
        let staleByPlate = try StaleResults.find(in: db, plates: plates.map(\.plate), modelsDir: modelsDir)
        let stale = plates.compactMap { p in
            staleByPlate[p.plate].map { $0.describe(plate: p.plate) + " than those listed below: `plateseg run --redo-stale` runs them again." }
        }
        html += ReportPage.provenance(try plates.map { ($0.plate, try db.provenanceRecords(plate: $0.plate)) }, stale: stale)
        html += ReportPage.models(try ModelsFolder(modelsDir).files())
        // Lets a person (or a headless browser in the tests) see that every overlay decoded.
        html += "<script>addEventListener('load',()=>{const i=[...document.querySelectorAll('img.overlay')];"
        html += "document.body.dataset.overlays=i.length;document.body.dataset.overlaysLoaded=i.filter(x=>x.naturalWidth>0).length;"
        html += "document.body.dataset.growthCurves=document.querySelectorAll('svg.growth').length})</script>\n"
        html += "</body></html>\n"
        let index = folder.appendingPathComponent("index.html")
        try html.write(to: index, atomically: true, encoding: .utf8)
        return index
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
    ((path as NSString).lastPathComponent as NSString).deletingPathExtension
}

enum ReportPage {
    static let typeColours = ["shsy5y": "#009e73", "astro": "#e69f00", "cort": "#cc79a7"]
    static let typeRGB = ["shsy5y": "0,158,115", "astro": "230,159,0", "cort": "204,121,167"]

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    static func head(title: String) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em;color:#222}
        table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
        th{background:#f4f4f4}td.l,th.l{text-align:left}
        .platemap td{width:3.2em;height:2.6em;text-align:center;font-size:.8em;border:1px solid #999}
        .platemap td.empty{background:#fafafa;color:#bbb}
        .images{display:flex;flex-wrap:wrap;gap:1em}.images figure{margin:0;width:360px}
        .images img{width:360px;border:1px solid #ccc}.err{color:#b00}
        .key span{display:inline-block;padding:2px 8px;margin-right:6px;color:#fff;border-radius:3px}
        .overtime{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}.overtime>div:last-child{max-width:40em}
        .curves{display:flex;flex-wrap:wrap;gap:.6em}.curves figure{margin:0;font-size:.8em;text-align:center}
        </style></head><body><h1>\(escape(title))</h1>

        """
    }

    static func plateSection(progress p: PlateProgress, counts: [WellCount], images: [StoredImage], overlays: [String: OverlayFile],
                             failed: [FailedJob], unreadable: [(path: String, error: String)]) -> String {
        var h = "<section class=\"plate\" id=\"plate-\(escape(p.plate))\"><h2>Plate \(escape(p.plate))</h2>\n"
        h += "<p>\(p.images) images (\(p.unreadableImages) unreadable); jobs: \(p.succeeded) succeeded, \(p.failed) failed, "
        h += "\(p.queued) queued, \(p.running) running.</p>\n"
        let growth = GrowthTable(counts)
        if growth.times.count > 1 {
            h += timeSeries(plate: p.plate, counts: counts, growth: growth)
        } else {
            h += plateMap(counts)
        }
        h += wellTable(counts)
        h += "<h3>Images</h3><div class=\"images\">\n"
        for image in images where image.error == nil && image.segmented {
            let time = image.timepoint.map { " time \($0.label)" } ?? ""
            let label = "\(image.well ?? "?") field \(image.field.map(String.init) ?? "?")\(time) — \((image.path as NSString).lastPathComponent)"
            switch overlays[image.path] {
            case let .drawn(overlay)?:
                h += "<figure><a href=\"\(escape(overlay))\"><img class=\"overlay\" src=\"\(escape(overlay))\" alt=\"\(escape(label))\"></a>"
                h += "<figcaption>\(escape(label))</figcaption></figure>\n"
            case let .notDrawn(reason)?:
                h += "<figure><figcaption>\(escape(label)): no overlay (\(escape(reason)))</figcaption></figure>\n"
            case nil:
                h += "<figure><figcaption>\(escape(label)): not merged (\(image.mergeState?.rawValue ?? "no job"))</figcaption></figure>\n"
            }
        }
        h += "</div>\n"
        if !failed.isEmpty || !unreadable.isEmpty {
            h += "<h3 class=\"err\">Problems</h3><table><tr><th class=\"l\">what</th><th class=\"l\">error</th></tr>\n"
            for u in unreadable { h += "<tr><td class=\"l\">image \(escape((u.path as NSString).lastPathComponent))</td><td class=\"l\">\(escape(u.error))</td></tr>\n" }
            for f in failed {
                h += "<tr><td class=\"l\">job \(f.id) \(escape(f.kind)) \(escape(((f.imagePath ?? "") as NSString).lastPathComponent))</td>"
                h += "<td class=\"l\">\(escape(f.error))</td></tr>\n"
            }
            h += "</table>\n"
        }
        return h + "</section>\n"
    }

    /// A plate with several time points: a plate map per time point behind a slider (the latest
    /// shown first), and each well's cells per type over time as a small line plot.
    static func timeSeries(plate: String, counts: [WellCount], growth: GrowthTable) -> String {
        let id = "tp-" + String(plate.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) ? Character($0) : "-" })
        let last = growth.times.count - 1
        var h = "<div class=\"overtime\"><div><h3>Plate map over time</h3><p><label>time point <input type=\"range\" class=\"tpslider\" id=\"\(id)\" min=\"0\" max=\"\(last)\" value=\"\(last)\" "
        h += "oninput=\"document.querySelectorAll('[data-slider=\\'\(id)\\']').forEach(e=>e.hidden=e.dataset.tp!=this.value);"
        h += "document.getElementById('\(id)-label').textContent=this.dataset['t'+this.value]\" "
        h += growth.times.enumerated().map { "data-t\($0.offset)=\"\(escape($0.element?.label ?? "-"))\"" }.joined(separator: " ")
        h += "></label> <b id=\"\(id)-label\">\(escape(growth.times[last]?.label ?? "-"))</b></p>\n"
        for (i, time) in growth.times.enumerated() {
            h += "<div class=\"tpmap\" data-slider=\"\(id)\" data-tp=\"\(i)\"\(i == last ? "" : " hidden")>"
            h += plateMap(counts.filter { $0.timepoint == time }, title: "At time point \(time?.label ?? "-")")
            h += "</div>\n"
        }
        h += "</div><div>" + growthCurves(growth) + "</div></div>\n"
        return h
    }

    /// Small multiples: one plot per well, one line per cell type, x from the first to the last
    /// time point (by its order: scan number or minutes), y from 0 to the well's largest count.
    static func growthCurves(_ growth: GrowthTable) -> String {
        let orders = growth.times.map { Double($0?.order ?? 0) }
        guard let first = orders.first, let lastOrder = orders.last else { return "" }
        let span = max(lastOrder - first, 1)
        let w = 150.0, ht = 80.0, pad = 4.0
        var byWell: [String: [GrowthTable.Row]] = [:]
        for row in growth.rows { byWell["\(row.plate)\u{0}\(row.well)", default: []].append(row) }
        var h = "<h3>Growth curves</h3><p class=\"key\">cells per well and type, from time point \(escape(growth.times.first??.label ?? "-")) "
        h += "to \(escape(growth.times.last??.label ?? "-")): "
        h += typeColours.sorted(by: { $0.key < $1.key }).map { "<span style=\"background:\($0.value)\">\($0.key)</span>" }.joined()
        h += "</p><div class=\"curves\">\n"
        for key in byWell.keys.sorted() {
            let rows = byWell[key]!
            let well = rows[0].well
            let top = Double(max(1, rows.flatMap(\.cells).max() ?? 1))
            h += "<figure><svg class=\"growth\" width=\"\(Int(w))\" height=\"\(Int(ht))\" viewBox=\"0 0 \(Int(w)) \(Int(ht))\" role=\"img\" "
            h += "aria-label=\"\(escape(well)) cells over time\"><rect x=\"0.5\" y=\"0.5\" width=\"\(Int(w) - 1)\" height=\"\(Int(ht) - 1)\" fill=\"none\" stroke=\"#ccc\"/>"
            for row in rows {
                let points = zip(orders, row.cells).map { x, n in
                    String(format: "%.1f,%.1f", pad + (x - first) / span * (w - 2 * pad), ht - pad - Double(n) / top * (ht - 2 * pad))
                }
                let colour = typeColours[row.cellType] ?? "#56b4e9"
                h += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\">"
                h += "<title>\(escape(row.cellType)): \(row.cells.map(String.init).joined(separator: ", "))</title></polyline>"
            }
            h += "</svg><figcaption>\(escape(well)) (max \(Int(top)))</figcaption></figure>\n"
        }
        return h + "</div>\n"
    }

    /// A plate-shaped grid: 8x12 unless a well lies outside it (then 16x24), cells shaded by count.
    static func plateMap(_ counts: [WellCount], title: String = "Plate map") -> String {
        var byWell: [String: [WellCount]] = [:]
        for c in counts { byWell[c.well, default: []].append(c) }
        let large = byWell.keys.contains { w in
            guard let r = w.first?.asciiValue, let col = Int(w.dropFirst()) else { return false }
            return r > UInt8(ascii: "H") || col > 12
        }
        let rows = large ? 16 : 8, cols = large ? 24 : 12
        let maxCount = max(1, byWell.values.map { $0.reduce(0) { $0 + $1.cells } }.max() ?? 1)
        var h = "<h3>\(escape(title))</h3><p class=\"key\">cells per well; letter = dominant type: "
        h += typeColours.sorted(by: { $0.key < $1.key }).map { "<span style=\"background:\($0.value)\">\($0.key)</span>" }.joined()
        h += "</p><table class=\"platemap\"><tr><th></th>" + (1...cols).map { "<th>\($0)</th>" }.joined() + "</tr>\n"
        for r in 0..<rows {
            let letter = String(UnicodeScalar(UInt8(65 + r)))
            h += "<tr><th>\(letter)</th>"
            for c in 1...cols {
                let well = letter + (c < 10 ? "0\(c)" : "\(c)")
                guard let inWell = byWell[well] else { h += "<td class=\"empty\">·</td>"; continue }
                let total = inWell.reduce(0) { $0 + $1.cells }
                let dominant = inWell.max { $0.cells < $1.cells }!.cellType
                let alpha = 0.15 + 0.85 * Double(total) / Double(maxCount)
                let rgb = typeRGB[dominant] ?? "86,180,233"
                h += "<td class=\"well\" title=\"\(well): \(total) cells, mostly \(escape(dominant))\" "
                h += "style=\"background:rgba(\(rgb),\(String(format: "%.2f", alpha)))\">\(total)<br>\(escape(String(dominant.prefix(1))))</td>"
            }
            h += "</tr>\n"
        }
        return h + "</table>\n"
    }

    static func wellTable(_ counts: [WellCount]) -> String {
        let timed = counts.contains { $0.timepoint != nil }
        var h = "<h3>Per well</h3><table class=\"wells\"><tr><th class=\"l\">well</th>" + (timed ? "<th class=\"l\">time point</th>" : "")
        h += "<th class=\"l\">cell type</th><th>cells</th><th>images</th><th>mean area (px)</th><th>mean score</th></tr>\n"
        for c in counts {
            h += "<tr><td class=\"l\">\(escape(c.well))</td>" + (timed ? "<td class=\"l\">\(escape(c.timepoint?.label ?? "-"))</td>" : "")
            h += "<td class=\"l\">\(escape(c.cellType))</td><td>\(c.cells)</td><td>\(c.images)</td>"
            h += "<td>\(String(format: "%.1f", c.meanArea))</td><td>\(String(format: "%.3f", c.meanScore))</td></tr>\n"
        }
        return h + "</table>\n"
    }

    /// What the stored results were made with, as the jobs recorded it.
    static func provenance(_ plates: [(plate: String, records: [String])], stale: [String]) -> String {
        var h = "<section><h2>Made with</h2><p>Model files and ensemble configs recorded by this plate's jobs.</p>"
        for s in stale { h += "<p class=\"err\">\(escape(s))</p>" }
        h += "<table>"
        h += "<tr><th class=\"l\">plate</th><th class=\"l\">record</th></tr>\n"
        for (plate, records) in plates {
            for r in records { h += "<tr><td class=\"l\">\(escape(plate))</td><td class=\"l\"><code>\(escape(r))</code></td></tr>\n" }
        }
        return h + "</table></section>\n"
    }

    static func models(_ files: [ModelFile]) -> String {
        var h = "<section><h2>Models and ensemble config in the models folder now</h2><table><tr><th class=\"l\">file</th><th class=\"l\">content hash</th><th>bytes</th></tr>\n"
        for f in files { h += "<tr><td class=\"l\">\(escape(f.name))</td><td class=\"l\">\(f.hash)</td><td>\(f.bytes)</td></tr>\n" }
        if files.isEmpty { h += "<tr><td class=\"l\" colspan=\"3\">no model files found</td></tr>\n" }
        return h + "</table></section>\n"
    }
}

/// An image's overlay in the report: the stored cells outlined over the image as it is now on
/// disk, or why it could not be drawn (the file moved, or changed since it was segmented).
enum OverlayFile {
    case drawn(String)
    case notDrawn(String)

    static func draw(_ image: StoredImage, cells: [LocatedCell], to url: URL, named name: String) throws -> OverlayFile {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: image.path)) } catch {
            return .notDrawn("\(image.path) cannot be read: \(error.localizedDescription)")
        }
        guard ContentHash.of(bytes) == image.contentHash else {
            return .notDrawn("\(image.path) changed since it was segmented")
        }
        let gray: GrayImage
        // 8-bit fields as they are; 16-bit ones stretched between their own 0.1st and 99.9th
        // percentiles, so that the cells are visible whatever the camera's range.
        let display = IntensityRule.matched(IntensityReference(lowPercentile: 0.1, highPercentile: 99.9, lowValue: 0, highValue: 255,
                                                               images: 0, source: "display"))
        do {
            let samples = try ImageFile.decode(bytes, name: image.path, page: image.page ?? 0)
            gray = samples.bitDepth == 8 ? IntensityRule.none.apply(samples) : display.apply(samples)
        } catch {
            return .notDrawn("\(error)")
        }
        let instances = try cells.map { c in
            (mask: try COCORLE(compressed: c.cell.rle, width: c.imageWidth, height: c.imageHeight).mask(), cellType: c.cell.cellType)
        }
        try Overlay.write(gray, instances: instances, to: url.path)
        return .drawn(name)
    }
}
