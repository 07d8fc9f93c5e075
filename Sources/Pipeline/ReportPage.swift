import Ensemble
import Foundation
import JobStore

/// The report's HTML, page by page. Every name and message is escaped: plate and file names are
/// the user's and may hold anything.
enum ReportPage {
    static let cellTypes = EnsembleConfig.cellTypes
    static let typeColours = ["shsy5y": "#009e73", "astro": "#e69f00", "cort": "#cc79a7"]
    static let typeRGB = ["shsy5y": "0,158,115", "astro": "230,159,0", "cort": "204,121,167"]
    static let otherRGB = "86,180,233"

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    /// A path segment of a link: escaped for the URL, then for the attribute.
    static func link(_ path: String) -> String {
        escape(path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path)
    }

    static func wellPath(plate: String, well: String) -> String {
        "wells/\(PlateReport.fileSafe(plate))/\(PlateReport.fileSafe(well)).html"
    }

    static func anchor(_ plate: String) -> String { "plate-" + PlateReport.fileSafe(plate) }

    static func head(title: String) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em;color:#222}
        table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
        th{background:#f4f4f4}td.l,th.l{text-align:left}
        .platemap td,.platemap th{text-align:center;padding:0;border:1px solid #999}
        .platemap td a{display:block;color:inherit;text-decoration:none}
        .pm96 td{width:3.2em;height:2.6em;font-size:.8em}.pm384 td{width:2.4em;height:1.9em;font-size:.62em}
        .pm1536 td{width:1.35em;height:1.1em;font-size:.42em}.pm1536 th{font-size:.5em}
        .platemap td.empty{background:#fafafa;color:#bbb}
        .fields{display:flex;flex-wrap:wrap;gap:1em}.fields figure{margin:0;width:\(PlateReport.thumbnailSide)px;font-size:.8em}
        .fields img{border:1px solid #ccc;max-width:\(PlateReport.thumbnailSide)px}.err{color:#b00}
        .key span{display:inline-block;padding:2px 8px;margin-right:6px;color:#fff;border-radius:3px}
        .overtime{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
        .curves{display:flex;flex-wrap:wrap;gap:.6em}.curves figure{margin:0;font-size:.8em;text-align:center}
        img.overlay{max-width:100%}
        </style></head><body><h1>\(escape(title))</h1>

        """
    }

    /// Lets a person (or a headless browser in the tests) see that every picture decoded.
    static let foot = """
        <script>addEventListener('load',()=>{const d=document.body.dataset,t=[...document.querySelectorAll('img.thumb')],
        o=[...document.querySelectorAll('img.overlay')];d.thumbs=t.length;d.thumbsLoaded=t.filter(x=>x.naturalWidth>0).length;
        d.overlays=o.length;d.overlaysLoaded=o.filter(x=>x.naturalWidth>0).length;
        d.growthCurves=document.querySelectorAll('svg.growth').length;d.wells=document.querySelectorAll('td.well').length})</script>
        <script>function psType(s){const t=s.value;document.querySelectorAll('[data-map="'+s.dataset.map+'"] td.well').forEach(e=>{
        const n=+e.dataset[t],m=+e.closest('table').dataset['max'+t]||1,c=t=='all'?e.dataset.rgb:s.dataset['rgb'+t];
        e.querySelector('a').firstChild.textContent=n;e.style.background=n?'rgba('+c+','+(0.15+0.85*n/m).toFixed(2)+')':'#fafafa'})}</script>
        </body></html>

        """

    static func plateSection(plate: PlateInfo, progress p: PlateProgress, counts: [WellCount], wells: Set<String>, gallery: [StoredImage],
                             pictures: [Int64: FieldPicture], failed: [FailedJob], unreadable: [(path: String, error: String)]) -> String {
        var h = "<section class=\"plate\" id=\"\(anchor(plate.name))\"><h2>Plate \(escape(plate.name))</h2>\n"
        h += "<p>\(p.images) images (\(p.unreadableImages) unreadable), \(p.imagesMerged) merged; jobs: \(p.succeeded) succeeded, "
        h += "\(p.failed) failed, \(p.queued) queued, \(p.running) running. Each well links to its fields.</p>\n"
        let growth = GrowthTable(counts)
        if growth.times.count > 1 {
            h += timeSeries(plate: plate.name, counts: counts, growth: growth, wells: wells)
        } else {
            h += plateMap(plate: plate.name, counts: counts, wells: wells, id: anchor(plate.name) + "-map")
        }
        h += wellTable(plate: plate.name, counts: counts)
        if !gallery.isEmpty {
            h += "<h3>Fields</h3>" + fields(gallery, root: plate.root, pictures: pictures, prefix: "")
        }
        if !failed.isEmpty || !unreadable.isEmpty {
            h += "<h3 class=\"err\">Problems</h3><table><tr><th class=\"l\">what</th><th class=\"l\">error</th></tr>\n"
            for u in unreadable {
                h += "<tr><td class=\"l\">image \(escape(relativePath(u.path, root: plate.root)))</td><td class=\"l\">\(escape(u.error))</td></tr>\n"
            }
            for f in failed {
                h += "<tr><td class=\"l\">job \(f.id) \(escape(f.kind)) \(escape(relativePath(f.imagePath ?? "", root: plate.root)))</td>"
                h += "<td class=\"l\">\(escape(f.error))</td></tr>\n"
            }
            h += "</table>\n"
        }
        return h + "</section>\n"
    }

    /// A well's page: its counts per type and time point, then its fields.
    static func wellPage(plate: PlateInfo, well: String, images: [StoredImage], counts: [WellCount], pictures: [Int64: FieldPicture],
                         fullAskedFor: PlateReport.FullOverlays) -> String {
        var h = head(title: "Plate \(plate.name) — well \(well)")
        h += "<p><a href=\"../../index.html#\(escape(anchor(plate.name)))\">back to the plate</a></p>\n"
        h += wellTable(plate: plate.name, counts: counts, linked: false)
        let growth = GrowthTable(counts)
        if growth.times.count > 1 { h += growthCurves(growth, links: false) }
        let drawnFull = images.contains { if case .drawn(_, _?) = pictures[$0.id] { return true }; return false }
        h += "<h3>Fields</h3>"
        if !drawnFull && !images.isEmpty {
            h += "<p>Thumbnails; full-size overlays of this well: <code>plateseg report --plate \(escape(plate.name)) --overlays \(escape(well))</code>.</p>"
        }
        h += fields(images, root: plate.root, pictures: pictures, prefix: "../../")
        return h + foot
    }

    /// Thumbnails with captions, each linked to its full-size overlay when there is one.
    static func fields(_ images: [StoredImage], root: String, pictures: [Int64: FieldPicture], prefix: String) -> String {
        var h = "<div class=\"fields\">\n"
        for image in images {
            let time = image.timepoint.map { ", time \($0.label)" } ?? ""
            let label = "\(image.well ?? "?") field \(image.field.map(String.init) ?? "?")\(time): \(relativePath(image.path, root: root))"
            switch pictures[image.id] {
            case let .drawn(thumbnail, overlay)?:
                let img = "<img class=\"thumb\" loading=\"lazy\" src=\"\(prefix)\(link(thumbnail))\" alt=\"\(escape(label))\">"
                h += "<figure>" + (overlay.map { "<a href=\"\(prefix)\(link($0))\">\(img)</a>" } ?? img)
                h += "<figcaption>\(escape(label))</figcaption></figure>\n"
            case let .notDrawn(reason)?:
                h += "<figure><figcaption>\(escape(label)): no picture (\(escape(reason)))</figcaption></figure>\n"
            case nil:
                h += "<figure><figcaption>\(escape(label)): not merged (\(image.mergeState?.rawValue ?? "no job"))</figcaption></figure>\n"
            }
        }
        return h + "</div>\n"
    }

    /// A plate with several time points: a plate map per time point behind a slider (the latest
    /// shown first), and each well's cells per type over time as a small line plot.
    static func timeSeries(plate: String, counts: [WellCount], growth: GrowthTable, wells: Set<String>) -> String {
        let id = "tp-" + PlateReport.fileSafe(plate)
        let last = growth.times.count - 1
        var h = "<div class=\"overtime\"><div><h3>Plate map over time</h3><p><label>time point <input type=\"range\" class=\"tpslider\" id=\"\(id)\" min=\"0\" max=\"\(last)\" value=\"\(last)\" "
        h += "oninput=\"document.querySelectorAll('[data-slider=\\'\(id)\\']').forEach(e=>e.hidden=e.dataset.tp!=this.value);"
        h += "document.getElementById('\(id)-label').textContent=this.dataset['t'+this.value]\" "
        h += growth.times.enumerated().map { "data-t\($0.offset)=\"\(escape($0.element?.label ?? "-"))\"" }.joined(separator: " ")
        h += "></label> <b id=\"\(id)-label\">\(escape(growth.times[last]?.label ?? "-"))</b></p>\n"
        for (i, time) in growth.times.enumerated() {
            h += "<div class=\"tpmap\" data-slider=\"\(id)\" data-tp=\"\(i)\"\(i == last ? "" : " hidden")>"
            h += plateMap(plate: plate, counts: counts.filter { $0.timepoint == time }, wells: wells, id: "\(id)-\(i)",
                          title: "At time point \(time?.label ?? "-")")
            h += "</div>\n"
        }
        h += "</div><div>" + growthCurves(growth, links: true) + "</div></div>\n"
        return h
    }

    /// Small multiples: one plot per well, one line per cell type, x from the first to the last
    /// time point (by its order: scan number or minutes), y from 0 to the well's largest count.
    static func growthCurves(_ growth: GrowthTable, links: Bool) -> String {
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
            let caption = links ? "<a href=\"\(link(wellPath(plate: rows[0].plate, well: well)))\">\(escape(well))</a>" : escape(well)
            h += "</svg><figcaption>\(caption) (max \(Int(top)))</figcaption></figure>\n"
        }
        return h + "</div>\n"
    }

    static func position(_ well: String) -> (row: Int, column: Int)? { WellName.position(well) }

    /// The plate format that holds every well: 96 (8x12), 384 (16x24) or 1536 (32x48).
    static func format(_ wells: some Sequence<String>) -> (rows: Int, columns: Int) {
        var rows = 8, columns = 12
        for well in wells {
            guard let p = position(well) else { continue }
            if p.row >= 16 || p.column > 24 { return (32, 48) }
            if p.row >= 8 || p.column > 12 { (rows, columns) = (16, 24) }
        }
        return (rows, columns)
    }

    static func rowName(_ row: Int) -> String { WellName.rowName(row) }

    /// A plate-shaped grid, each well shaded by its count and linked to its page; a menu shows
    /// one cell type's counts instead of all.
    static func plateMap(plate: String, counts: [WellCount], wells: Set<String>, id: String, title: String = "Plate map") -> String {
        var byWell: [String: [String: Int]] = [:]
        for c in counts { byWell[c.well, default: [:]][c.cellType, default: 0] += c.cells }
        let (rows, cols) = format(wells.union(byWell.keys))
        let types = (cellTypes + Set(counts.map(\.cellType)).subtracting(cellTypes).sorted())
        var maxima = ["all": 1]
        for (_, byType) in byWell {
            maxima["all"] = max(maxima["all"]!, byType.values.reduce(0, +))
            for (t, n) in byType { maxima[t] = max(maxima[t] ?? 1, n) }
        }
        var h = "<h3>\(escape(title))</h3><p class=\"key\">cells per well; letter = dominant type: "
        h += typeColours.sorted(by: { $0.key < $1.key }).map { "<span style=\"background:\($0.value)\">\($0.key)</span>" }.joined()
        h += " <label>show <select data-map=\"\(id)\" onchange=\"psType(this)\" "
        h += types.map { "data-rgb\($0)=\"\(typeRGB[$0] ?? otherRGB)\"" }.joined(separator: " ")
        h += "><option value=\"all\">all types</option>" + types.map { "<option value=\"\(escape($0))\">\(escape($0))</option>" }.joined()
        h += "</select></label></p>\n<table class=\"platemap pm\(rows * cols)\" data-map=\"\(id)\" "
        h += (["all"] + types).map { "data-max\($0)=\"\(maxima[$0] ?? 1)\"" }.joined(separator: " ") + ">"
        h += "<tr><th></th>" + (1...cols).map { "<th>\($0)</th>" }.joined() + "</tr>\n"
        var byPosition: [Int: String] = [:]
        for well in wells.union(byWell.keys) {
            if let p = position(well) { byPosition[p.row * 1000 + p.column] = well }
        }
        for r in 0..<rows {
            h += "<tr><th>\(rowName(r))</th>"
            for c in 1...cols {
                guard let well = byPosition[r * 1000 + c] else { h += "<td class=\"empty\">·</td>"; continue }
                let byType = byWell[well] ?? [:]
                let total = byType.values.reduce(0, +)
                let dominant = byType.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? ""
                let rgb = typeRGB[dominant] ?? otherRGB
                let alpha = total == 0 ? 0 : 0.15 + 0.85 * Double(total) / Double(maxima["all"]!)
                let summary = types.map { "\($0) \(byType[$0] ?? 0)" }.joined(separator: ", ")
                h += "<td class=\"well\" title=\"\(escape(well)): \(total) cells (\(escape(summary)))\" data-all=\"\(total)\" data-rgb=\"\(rgb)\" "
                h += types.map { "data-\($0)=\"\(byType[$0] ?? 0)\"" }.joined(separator: " ")
                h += " style=\"background:\(total == 0 ? "#fafafa" : "rgba(\(rgb),\(String(format: "%.2f", alpha)))")\">"
                h += "<a href=\"\(link(wellPath(plate: plate, well: well)))\">\(total)<br>\(escape(String(dominant.prefix(1))))</a></td>"
            }
            h += "</tr>\n"
        }
        return h + "</table>\n"
    }

    /// A row per well (and time point): cells of each type, all cells, fields with cells.
    static func wellTable(plate: String, counts: [WellCount], linked: Bool = true) -> String {
        let timed = counts.contains { $0.timepoint != nil }
        let types = cellTypes + Set(counts.map(\.cellType)).subtracting(cellTypes).sorted()
        struct Key: Hashable { var well: String; var time: TimePoint? }
        var rows: [Key: [String: WellCount]] = [:]
        for c in counts { rows[Key(well: c.well, time: c.timepoint), default: [:]][c.cellType] = c }
        var h = "<h3>Per well</h3><table class=\"wells\"><tr><th class=\"l\">well</th>" + (timed ? "<th class=\"l\">time point</th>" : "")
        h += types.map { "<th>\(escape($0))</th>" }.joined() + "<th>total</th><th>mean area (px)</th><th>mean score</th></tr>\n"
        let keys = rows.keys.sorted { a, b in
            let pa = position(a.well), pb = position(b.well)
            if a.well != b.well { return (pa?.row ?? 99, pa?.column ?? 0, a.well) < (pb?.row ?? 99, pb?.column ?? 0, b.well) }
            return (a.time?.order ?? -1) < (b.time?.order ?? -1)
        }
        for key in keys {
            let byType = rows[key]!
            let total = byType.values.reduce(0) { $0 + $1.cells }
            let area = byType.values.reduce(0.0) { $0 + $1.meanArea * Double($1.cells) } / Double(max(total, 1))
            let score = byType.values.reduce(0.0) { $0 + $1.meanScore * Double($1.cells) } / Double(max(total, 1))
            let name = linked ? "<a href=\"\(link(wellPath(plate: plate, well: key.well)))\">\(escape(key.well))</a>" : escape(key.well)
            h += "<tr><td class=\"l\">\(name)</td>" + (timed ? "<td class=\"l\">\(escape(key.time?.label ?? "-"))</td>" : "")
            h += types.map { "<td>\(byType[$0]?.cells ?? 0)</td>" }.joined()
            h += "<td>\(total)</td><td>\(String(format: "%.1f", area))</td><td>\(String(format: "%.3f", score))</td></tr>\n"
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
