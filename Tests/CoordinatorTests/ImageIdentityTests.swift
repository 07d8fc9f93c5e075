import Coordinator
import JobStore
import Testing

/// File names as the imagers write them (taken from real exports: Harmony, MetaXpress,
/// Incucyte, CellVoyager, Cellomics) and the identity each must give.
@Suite struct ImageIdentityTests {
    @Test(arguments: [
        ("shsy5y[diff]_A10_4.png", "A10", 4),
        ("astro[hippo]_E10-4_Vessel-714_Ph_3.png", "E10", 4),
        ("cort_b3_1.png", "B03", 1),
        ("PLATE1_B02_s1_w1.png", "B02", 1),
        ("2021-06-01_plate7_H12_s12_w2A1B2C3.png", "H12", 12),
        ("F01_A01_s1.png", "A01", 1),
        ("A12_P24_s3_w1.png", "P24", 3),
        ("r02c03f01p01-ch1sk1fk1fl1.png", "B03", 1),
        ("r08c12f09p01-ch2.png", "H12", 9),
    ])
    func readsWellAndField(name: String, well: String, field: Int) {
        let identity = ImageIdentity.parse(fileName: name)
        #expect(identity?.well == well && identity?.field == field)
    }

    @Test func imageXpressWithoutSiteHasNoField() {
        #expect(ImageIdentity.parse(fileName: "PLATE1_C05_w1.png") == ImageIdentity(well: "C05", field: nil, channel: "w1"))
        #expect(ImageIdentity.parse(fileName: "ADSAStaphInfection2_A01_w2247376DD-6ADD-442D-AE47-F54A05F3EA94.tif")
                == ImageIdentity(well: "A01", field: nil, channel: "w2"))
        #expect(ImageIdentity.parse(fileName: "101210OranePlt1_C16_w1_[9AA4D9EA-18E4-4354-8C7D-0202029A8048].tif")
                == ImageIdentity(well: "C16", field: nil, channel: "w1"))
        #expect(ImageIdentity.parse(fileName: "B07_D04_w2.png") == ImageIdentity(well: "D04", field: nil, channel: "w2"))
        #expect(ImageIdentity.parse(fileName: "H01_C03.png") == ImageIdentity(well: "C03", field: nil))
    }

    @Test func imageXpressTimeSeriesTakesTimeAndPlaneFromFolders() {
        let path = "2024-04-22/1697/TimePoint_2/1well-3C-2S-Zmix-T_C07_s2_w3612E2F5A-EDA4-45D6-AEBE-8BB16710CDD5.tif"
        #expect(ImageIdentity.parse(relativePath: path)
                == ImageIdentity(well: "C07", field: 2, timepoint: TimePoint(scan: 2), channel: "w3"))
        let plane = "2023-02-21/1334/ZStep_1/Projection-Mix_E07_s1_w1E78EB128-BD0D-4D94-A6AD-3FF28BB1B105.tif"
        #expect(ImageIdentity.parse(relativePath: plane) == ImageIdentity(well: "E07", field: 1, channel: "w1", plane: 1))
        #expect(ImageIdentity.isThumbnail(fileName: "Projection-Mix_E07_s1_w1_thumb187DE64B-038A-4671-BF6B-683721723769.tif"))
        #expect(!ImageIdentity.isThumbnail(fileName: "Projection-Mix_E07_s1_w1E94C24BD-45E4-450A-9919-257C714278F7.tif"))
    }

    @Test func phenixGivesPlaneChannelAndTimePoint() {
        #expect(ImageIdentity.parse(fileName: "r01c01f01p01-ch6sk1fk1fl1.tiff")
                == ImageIdentity(well: "A01", field: 1, timepoint: TimePoint(scan: 1), channel: "ch6", plane: 1))
        #expect(ImageIdentity.parse(fileName: "r03c11f12p02-ch1sk17fk1fl1.tiff")?.timepoint == TimePoint(scan: 17))
    }

    @Test func incucyteGivesElapsedOrClockTime() {
        #expect(ImageIdentity.parse(fileName: "VID9955_Phase_B3_1_00d00h00m.tif")
                == ImageIdentity(well: "B03", field: 1, timepoint: TimePoint(elapsedMinutes: 0), channel: "Phase"))
        let later = ImageIdentity.parse(fileName: "VID1630_C4_1_01d23h34m.tif")
        #expect(later == ImageIdentity(well: "C04", field: 1, timepoint: TimePoint(label: "01d23h34m", order: (24 + 23) * 60 + 34)))
        // LIVECell's crops add a trailing index that is not Incucyte's.
        #expect(ImageIdentity.parse(fileName: "A172_Phase_A7_1_00d00h00m_1.tif")?.well == "A07")
        let clock = ImageIdentity.parse(fileName: "VID483_G2_1_2018y08m17d_01h56m.tif")
        #expect(clock?.well == "G02" && clock?.timepoint?.label == "2018-08-17 01:56")
        let nextDay = ImageIdentity.parse(fileName: "VID483_G2_1_2018y08m18d_01h56m.tif")
        #expect(nextDay!.timepoint!.order - clock!.timepoint!.order == 24 * 60)
    }

    /// Found by fuzzing (`names`, `manifest`): a time since the first scan whose days fit an
    /// `Int` but whose minutes do not stopped the program (arithmetic overflow) instead of
    /// being no time point.
    @Test func aTimeTooLongForMinutesIsNoTimePoint() {
        #expect(ImageIdentity.parse(fileName: "D_B86_1_06766666666666666667d44h00m") == nil)
        #expect(TimePoint(parsing: "6666666666666600d02h00m") == nil)
        #expect(TimePoint(parsing: "1000d02h00m")?.order == (1000 * 24 + 2) * 60)
    }

    @Test func cellVoyagerAndCellomics() {
        #expect(ImageIdentity.parse(fileName: "CV8000-Minimal-DataSet-2C-3W-4S-FP2-stack_D08_T0001F001L01A02Z01C02.tif")
                == ImageIdentity(well: "D08", field: 1, timepoint: TimePoint(scan: 1), channel: "C02", plane: 1))
        #expect(ImageIdentity.parse(fileName: "AS_09125_050116030001_D03f00d1.tif") == ImageIdentity(well: "D03", field: 0, channel: "d1"))
        #expect(ImageIdentity.parse(fileName: "AS_09047_050428030001_O01f01d2.TIF") == ImageIdentity(well: "O01", field: 1, channel: "d2"))
    }

    @Test(arguments: ["0f08d640930b.png", "image.png", "r00c01f01.png", "notes_Z99_s1.png"])
    func unknownNamesHaveNoIdentity(name: String) {
        #expect(ImageIdentity.parse(fileName: name) == nil)
    }

    @Test func timePointsParseAndOrder() {
        #expect(TimePoint(parsing: "3") == TimePoint(scan: 3))
        #expect(TimePoint(parsing: "1d2h3m") == TimePoint(elapsedMinutes: 24 * 60 + 2 * 60 + 3))
        #expect(TimePoint(parsing: "01d02h03m")?.label == "01d02h03m")
        #expect(TimePoint(parsing: "yesterday") == nil && TimePoint(parsing: "-1") == nil)
        #expect(TimePoint(year: 1970, month: 1, day: 2, hour: 0, minute: 0).order == 1440)
        #expect(TimePoint(year: 2000, month: 3, day: 1, hour: 0, minute: 0).order
                - TimePoint(year: 2000, month: 2, day: 28, hour: 0, minute: 0).order == 2 * 1440, "2000 is a leap year")
        #expect([TimePoint(scan: 10), TimePoint(scan: 2)].sorted() == [TimePoint(scan: 2), TimePoint(scan: 10)])
    }
}
