import Ensemble
import Foundation
import Imaging
import JobStore
@testable import Pipeline
import Testing

/// One name per image (its path in the plate folder), and filters that mean what they say.
@Suite struct ImageNamesTests {
    static func image(_ id: Int64, _ relative: String, plate: String = "P") -> StoredImage {
        StoredImage(id: id, plate: plate, path: "/plates/\(plate)/\(relative)", well: "B02", field: 1, timepoint: nil, channel: nil, plane: nil,
                    page: nil, segmented: true, width: 10, height: 10, contentHash: "h", error: nil, mergeJobID: nil, mergeState: nil)
    }

    let names = ImageNames([image(1, "a/x.png"), image(2, "b/x.png"), image(3, "y.tif")],
                           plates: [PlateInfo(name: "P", root: "/plates/P", settings: "", keepTileOutputs: false, created: 0)])

    @Test func anImageIsNamedByItsPathInThePlateFolder() throws {
        #expect(try names.image(named: "b/x.png")?.id == 2)
        #expect(try names.image(named: "b/x")?.id == 2, "without its extension, as an annotation id")
        #expect(try names.image(named: "/plates/P/a/x.png")?.id == 1)
        #expect(try names.image(named: "y")?.id == 3, "a file name only one image has")
        #expect(try names.image(named: "z") == nil)
        #expect(names.name(of: Self.image(2, "b/x.png")) == "b/x.png")
    }

    /// Found by fuzzing (`truth-names`): "//" before a letter beyond ASCII made Foundation's path
    /// methods trap.
    @Test func pathsWithADoubleSlashAndLettersBeyondASCIIAreNamed() throws {
        let names = ImageNames([Self.image(1, "scans//étoile.png"), Self.image(2, "Zelle.ä.tif"), Self.image(3, ".hidden")],
                               plates: [PlateInfo(name: "P", root: "/plates/P", settings: "", keepTileOutputs: false, created: 0)])
        #expect(try names.image(named: "scans//étoile")?.id == 1)
        #expect(try names.image(named: "étoile.png")?.id == 1)
        #expect(try names.image(named: "Zelle.ä")?.id == 2)
        #expect(try names.image(named: ".hidden")?.id == 3)
        #expect(PathName.withoutExtension("b/x") == "b/x" && PathName.withoutExtension("b.d/x") == "b.d/x")
        // A NUL ends no name early: "a/x.png" and a name holding a NUL are two names.
        #expect(try names.image(named: "scans/étoile.png\u{0}.tif") == nil && PathName.file("a/x.png\u{0}/y") == "a/x.png\u{0}/y")
    }

    @Test func aFileNameTwoImagesShareIsRefusedNamingBoth() throws {
        let error = try #require(throws: ImageNameError.self) { _ = try names.image(named: "x.png") }
        #expect(error.description.contains("P: a/x.png") && error.description.contains("P: b/x.png"))
    }

    @Test func annotationsOfAnotherToolsFolderAreMatchedByFileName() throws {
        let truth = GroundTruth(images: [TruthImage(id: "train/y", width: 10, height: 10, cellType: "astro", masks: []),
                                         TruthImage(id: "b/x", width: 10, height: 10, cellType: "astro", masks: [])], errors: [])
        let (matched, ids) = try Evaluation.annotated([Self.image(1, "a/x.png"), Self.image(2, "b/x.png"), Self.image(3, "y.tif")],
                                                      plates: [PlateInfo(name: "P", root: "/plates/P", settings: "", keepTileOutputs: false, created: 0)],
                                                      truth: truth, truthPath: "t.json")
        #expect(matched.map(\.id) == [2, 3] && ids[3] == "train/y" && ids[2] == "b/x")
        let ambiguous = GroundTruth(images: [TruthImage(id: "x", width: 10, height: 10, cellType: nil, masks: [])], errors: [])
        #expect(throws: EvaluationError.self) {
            try Evaluation.annotated([Self.image(1, "a/x.png"), Self.image(2, "b/x.png")],
                                     plates: [PlateInfo(name: "P", root: "/plates/P", settings: "", keepTileOutputs: false, created: 0)],
                                     truth: ambiguous, truthPath: "t.json")
        }
    }
}

@Suite struct CellFilterTests {
    @Test func wellsAndTypesAreReadAsALabUserWritesThem() throws {
        let plate = try MergeReadyPlate()
        for spelling in ["a1", "A1", "A01", "a01"] {
            #expect(try CellFilter.query(plate.store, plate: "P", well: spelling, cellType: nil, timepoint: nil).well == "A01")
        }
        #expect(try CellFilter.query(plate.store, plate: nil, well: nil, cellType: "Astro", timepoint: nil).cellType == "astro")
    }

    @Test func whatTheDatabaseDoesNotHoldIsOneLineNamingWhatItDoes() throws {
        let plate = try MergeReadyPlate()
        func message(_ plateName: String? = "P", well: String? = nil, type: String? = nil, time: String? = nil) -> String {
            do {
                _ = try CellFilter.query(plate.store, plate: plateName, well: well, cellType: type, timepoint: time)
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(message("Q") == "no plate Q in \(plate.store.location); its plates are P")
        #expect(message(well: "B3") == "no well B03 on plate P; its 1 wells are A01")
        #expect(message(well: "3B") == "--well 3B is not a well name; give a row and a column, e.g. B03")
        #expect(message(type: "neuron") == "--cell-type neuron is not a cell type; the types are shsy5y, astro, cort")
        #expect(message(time: "2") == "no time point 2 on plate P; its images carry no time point")
    }
}
