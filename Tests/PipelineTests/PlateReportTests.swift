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

    @Test func aWellBeyondH12MakesThePlateMap384Wells() {
        func count(_ well: String) -> WellCount {
            WellCount(plate: "P", well: well, timepoint: nil, cellType: "astro", cells: 3, images: 1, meanArea: 10, meanScore: 0.5)
        }
        #expect(ReportPage.plateMap([count("B03")]).contains("<th>12</th></tr>"))
        let large = ReportPage.plateMap([count("P24")])
        #expect(large.contains("<th>24</th></tr>") && large.contains("<th>P</th>"))
    }

    @Test func theReportNamesAFieldItCannotDrawAndTheFilesThatMadeTheCells() throws {
        let plate = try MergeReadyPlate()
        try plate.runMerge(MergeHandler(store: plate.store, merger: Merger()))
        let folder = temporaryFolder("plateseg-report")
        let models = temporaryFolder("plateseg-models")
        try Data("weights".utf8).write(to: models.appendingPathComponent("maskrcnn.safetensors"))
        let index = try PlateReport.write(from: plate.store, plate: "P", to: folder, modelsDir: models.path)
        let html = try String(contentsOf: index, encoding: .utf8)
        #expect(html.contains("<h2>Plate P</h2>"))
        #expect(html.contains("no overlay (\(MergeReadyPlate.image) cannot be read"), "the field is not on this machine")
        #expect(html.contains("maskrcnn.safetensors</td><td class=\"l\">\(ContentHash.of(Data("weights".utf8)))"))
        #expect(html.contains("fnv1a64:maskrcnn"), "the tile jobs' recorded model file")
    }

    @Test func anUnknownPlateIsOneLine() throws {
        let plate = try MergeReadyPlate()
        let error = try #require(throws: ReportError.self) {
            try PlateReport.write(from: plate.store, plate: "Q", to: temporaryFolder(), modelsDir: "models")
        }
        #expect(error.description == "no plate Q in \(plate.store.location)")
    }
}
