import Coordinator
import Testing

@Suite struct PlatePositionTests {
    @Test(arguments: [
        ("shsy5y[diff]_A10_4.png", "A10", 4),
        ("astro[hippo]_E10-4_Vessel-714_Ph_3.png", "E10", 4),
        ("cort_b3_1.png", "B03", 1),
        ("PLATE1_B02_s1_w1.png", "B02", 1),
        ("2021-06-01_plate7_H12_s12_w2A1B2C3.png", "H12", 12),
        ("r02c03f01p01-ch1sk1fk1fl1.png", "B03", 1),
        ("r08c12f09p01-ch2.png", "H12", 9),
    ])
    func readsWellAndField(name: String, well: String, field: Int) {
        #expect(PlatePosition.parse(fileName: name) == PlatePosition(well: well, field: field))
    }

    @Test func imageXpressWithoutSiteHasNoField() {
        #expect(PlatePosition.parse(fileName: "PLATE1_C05_w1.png") == PlatePosition(well: "C05", field: nil))
    }

    @Test(arguments: ["0f08d640930b.png", "image.png", "r00c01f01.png", "notes_Z99_s1.png"])
    func unknownNamesHaveNoPosition(name: String) {
        #expect(PlatePosition.parse(fileName: name) == nil)
    }
}
