import Ensemble
import Foundation
import Imaging
import JobStore
@testable import Pipeline
import Testing

@Suite struct PlateReportTests {
    @Test func fileNamesAreMadeSafeAndTextIsEscaped() {
        #expect(PlateReport.fileSafe("run 3/plate é.png") == "run_3_plate__.png")
        #expect(ReportPage.escape("<b a='1'>&\"") == "&lt;b a=&#39;1&#39;&gt;&amp;&quot;")
    }

    func count(_ well: String, _ type: String = "astro", _ cells: Int = 3) -> WellCount {
        WellCount(plate: "P", well: well, timepoint: nil, cellType: type, cells: cells, images: 1, meanArea: 10, meanScore: 0.5)
    }

    @Test func thePlateMapTakesTheFormatThatHoldsEveryWell() {
        let small = ReportPage.plateMap(plate: "P", counts: [count("B03")], wells: ["B03"], id: "m")
        #expect(small.contains("pm96") && small.contains("<th>12</th></tr>") && !small.contains("<th>13</th>"))
        let large = ReportPage.plateMap(plate: "P", counts: [count("P24")], wells: ["P24"], id: "m")
        #expect(large.contains("pm384") && large.contains("<th>24</th></tr>") && large.contains("<th>P</th>"))
        let huge = ReportPage.plateMap(plate: "P", counts: [count("AF48")], wells: ["AF48", "A01"], id: "m")
        #expect(huge.contains("pm1536") && huge.contains("<th>48</th></tr>") && huge.contains("<th>AF</th>"))
        #expect(huge.components(separatedBy: "<td class=\"well\"").count - 1 == 2, "a well without cells is on the map too")
    }

    @Test func eachWellOfTheMapLinksToItsPageAndCarriesItsCountsPerType() {
        let map = ReportPage.plateMap(plate: "P<1>", counts: [count("B03", "astro", 5), count("B03", "cort", 2)], wells: ["B03"], id: "m")
        #expect(map.contains("href=\"wells/P_1_/B03.html\""))
        #expect(map.contains("data-all=\"7\"") && map.contains("data-astro=\"5\"") && map.contains("data-cort=\"2\"") && map.contains("data-shsy5y=\"0\""))
        #expect(map.contains("<option value=\"cort\">cort</option>"))
    }

    @Test func theReportNamesAFieldItCannotDrawAndTheFilesThatMadeTheCells() throws {
        let plate = try MergeReadyPlate()
        try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
        let folder = temporaryFolder("plateseg-report").appendingPathComponent("report")
        let models = temporaryFolder("plateseg-models")
        try Data("weights".utf8).write(to: models.appendingPathComponent("maskrcnn.safetensors"))
        let index = try PlateReport.write(from: plate.store, plates: .named("P"), to: folder.path, modelsDir: models.path)
        let html = try String(contentsOf: index, encoding: .utf8)
        #expect(html.contains("<h2>Plate P</h2>"))
        #expect(html.contains("no picture (\(MergeReadyPlate.image) cannot be read"), "the field is not on this machine")
        #expect(html.contains("maskrcnn.safetensors</td><td class=\"l\">\(ContentHash.of(Data("weights".utf8)))"))
        #expect(html.contains("fnv1a64:maskrcnn"), "the tile jobs' recorded model file")
        let well = try String(contentsOf: folder.appendingPathComponent("wells/P/A01.html"), encoding: .utf8)
        #expect(well.contains("well A01") && well.contains("cells_A01_s1.png"))
    }

    @Test func anUnknownPlateIsOneLineNamingThoseThere() throws {
        let plate = try MergeReadyPlate()
        let error = try #require(throws: ReportError.self) {
            try PlateReport.write(from: plate.store, plates: .named("Q"), to: temporaryFolder().appendingPathComponent("r").path, modelsDir: "models")
        }
        #expect(error.description == "no plate Q in \(plate.store.location); its plates are P")
    }

    @Test func aFailedReportLeavesTheEarlierOneInPlace() throws {
        let plate = try MergeReadyPlate()
        let folder = temporaryFolder("plateseg-report").appendingPathComponent("report")
        _ = try PlateReport.write(from: plate.store, plates: .newest, to: folder.path, modelsDir: "models")
        let before = try String(contentsOf: folder.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(throws: ReportError.self) {
            try PlateReport.write(from: plate.store, plates: .named("Q"), to: folder.path, modelsDir: "models")
        }
        #expect(try String(contentsOf: folder.appendingPathComponent("index.html"), encoding: .utf8) == before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.deletingLastPathComponent().path)
        #expect(leftovers == ["report"], "nothing half-written beside it")
    }
}
