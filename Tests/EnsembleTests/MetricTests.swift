import Foundation
import Imaging
import Testing
@testable import Ensemble

@Suite struct MetricTests {
    let a = rect(0, 0, 10, 10), b = rect(30, 30, 10, 10), c = rect(60, 0, 10, 20)

    @Test func perfectPredictionScoresOne() {
        #expect(SartoriusMetric.score(predicted: [b, a, c], truth: [a, b, c]).score == 1)
    }

    @Test func emptyPredictionScoresZeroAndNothingAgainstNothingScoresOne() {
        let s = SartoriusMetric.score(predicted: [], truth: [a, b])
        #expect(s.score == 0)
        #expect(s.counts.allSatisfy { $0.truePositives == 0 && $0.falseNegatives == 2 && $0.falsePositives == 0 })
        #expect(SartoriusMetric.score(predicted: [], truth: []).score == 1)
        #expect(SartoriusMetric.score(predicted: [a], truth: []).score == 0)
    }

    @Test func oneShiftedMask() {
        // Shifted 2 px: IoU = 80/120 = 0.667, a match for t = 0.50, 0.55, 0.60, 0.65 only.
        // Those give 2/2 (a and the shifted b both match), the other six 1/(1 + 1 + 1).
        let s = SartoriusMetric.score(predicted: [a, shifted(b, dx: 2, dy: 0)], truth: [a, b])
        #expect(s.counts.map(\.truePositives) == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1])
        #expect(abs(s.score - (4 * 1 + 6 * (1.0 / 3)) / 10) < 1e-12)
    }

    @Test func aSplitCell() {
        // Truth 10x20 split into 10x14 (IoU 0.7) and 10x6 (IoU 0.3): below t = 0.7 one TP,
        // one FP → 1/2; from 0.7 on (IoU must exceed t) nothing matches → 0/3.
        let s = SartoriusMetric.score(predicted: [rect(60, 0, 10, 14), rect(60, 14, 10, 6)], truth: [c])
        #expect(s.counts.map(\.truePositives) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
        #expect(abs(s.score - 0.2) < 1e-12)
    }

    @Test func aMergedPair() {
        // Two truths 10x14 and 10x6 predicted as one 10x20: IoU 0.7 with the larger, so one TP
        // and one FN for four thresholds → 1/2 each, 0/2 after.
        let s = SartoriusMetric.score(predicted: [c], truth: [rect(60, 0, 10, 14), rect(60, 14, 10, 6)])
        #expect(s.counts.map(\.falseNegatives) == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2])
        #expect(abs(s.score - 0.2) < 1e-12)
    }

    @Test func iouExactlyAtTheThresholdIsNoMatch() {
        // 10x10 vs 10x10 shifted 10/3 px can't be exact; use 10x20 vs its 10x10 half: IoU 0.5.
        let s = SartoriusMetric.score(predicted: [rect(0, 0, 10, 10)], truth: [rect(0, 0, 10, 20)])
        #expect(s.score == 0)
    }

    @Test func overlappingTruthGetsTheMaximumOneToOneMatching() {
        // Truths t0 (rows 0..<10) and t1 (rows 3..<13) overlap. p0 (rows 1..<11) matches t0 best
        // (9/11) and t1 too (8/12); p1 (rows 0..<7) matches only t0 (7/10). Greedy by IoU pairs
        // p0-t0 and leaves p1 out; the one-to-one maximum pairs p0-t1 and p1-t0.
        let t0 = rect(0, 0, 10, 10), t1 = rect(0, 3, 10, 10)
        let p0 = rect(0, 1, 10, 10), p1 = rect(0, 0, 10, 7)
        #expect(p0.iou(t0) > p1.iou(t0) && p1.iou(t0) > p0.iou(t1) && p0.iou(t1) > 0.65 && p1.iou(t1) < 0.5)
        let s = SartoriusMetric.score(predicted: [p0, p1], truth: [t0, t1])
        #expect(s.counts.map(\.truePositives) == [2, 2, 2, 2, 1, 1, 1, 0, 0, 0])  // then p0-t0 alone, up to 0.8
    }

    /// One image of few annotated cells, overcounted many times over, does not turn a type that
    /// every other image undercounts into an overcounted one.
    @Test func theCountBiasIsTheTypicalImages() {
        let tiles = (0..<5).map { i in rect(i * 20, 40, 10, 10) }
        let under = SartoriusMetric.score(predicted: Array(tiles[..<4]), truth: tiles)  // 4 of 5: −20 %
        let over = SartoriusMetric.score(predicted: tiles, truth: [tiles[0]])            // 5 of 1: +400 %
        let report = MetricReport(images: ["u1": under, "u2": under, "o": over],
                                  groupings: ["cell type": ["u1": "astro", "u2": "astro", "o": "astro"]])
        #expect(abs(report.countBias + 0.2) < 1e-12)
        #expect(abs(report.groups["cell type"]!["astro"]!.countBias + 0.2) < 1e-12)
        #expect(MetricReport.median([3, -1, 2, 0]) == 1 && MetricReport.median([]) == 0)
    }

    @Test func reportAveragesImagesAndGroups() {
        let one = SartoriusMetric.score(predicted: [a], truth: [a])
        let zero = SartoriusMetric.score(predicted: [], truth: [a])
        let split = SartoriusMetric.score(predicted: [rect(60, 0, 10, 14), rect(60, 14, 10, 6)], truth: [c])
        let report = MetricReport(images: ["i1": one, "i2": zero, "i3": split],
                                  groupings: ["cell type": ["i1": "astro", "i2": "astro", "i3": "cort"],
                                              "well": ["i1": "B02", "i3": "B02"]])
        #expect(abs(report.score! - 1.2 / 3) < 1e-12)
        #expect(report.groups["cell type"]?["astro"] == MetricReport.Group(score: 0.5, images: 2, predictedCells: 1, annotatedCells: 2,
                                                                                      countBias: -0.5))
        #expect(report.groups["cell type"]?["cort"]?.predictedCells == 2)
        #expect((report.predictedCells, report.annotatedCells) == (3, 3))
        // Counts by image: astro 1 of 1 and 0 of 1, cort 2 of 1; overall three images at 0, −1, +1.
        #expect(report.groups["cell type"]?["cort"]?.countBias == 1)
        #expect(report.countBias == 0)
        #expect(abs(report.groups["cell type"]!["cort"]!.score - 0.2) < 1e-12)
        #expect(report.groups["well"]?["B02"]?.images == 2)
        #expect(MetricReport(images: [:]).score == nil)
    }

    /// The demo truth against a perturbed copy of itself (masks moved by a pixel or two, every
    /// seventh dropped), scored here and by reference.py with numpy IoU and scipy's assignment.
    @Test func agreesWithAnIndependentPythonComputationOnTheDemoTruth() throws {
        let reference = try Reference.load()
        let truth = try GroundTruth.read(path: demoTruthPath)
        #expect(truth.errors.isEmpty)
        var scores: [String: SartoriusMetric.ImageScore] = [:]
        for image in truth.images {
            var predicted: [Mask] = []
            for (k, m) in image.masks.enumerated() where k % 7 != 3 {
                let p = shifted(m, dx: k % 3, dy: k % 5 == 0 ? 1 : 0)
                if !p.isEmpty { predicted.append(p) }
            }
            let s = SartoriusMetric.score(predicted: predicted, truth: image.masks)
            scores[image.id] = s
            let expected = try #require(reference.metric.images[image.id])
            #expect(abs(s.score - expected) < 1e-8, "image \(image.id)")
        }
        #expect(scores.count == 12)
        #expect(abs(MetricReport(images: scores).score! - reference.metric.overall) < 1e-8)
    }
}

@Suite struct GroundTruthTests {
    func temporary(_ name: String, _ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("truth-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func readsTheCompetitionCSV() throws {
        let truth = try GroundTruth.read(path: demoTruthPath)
        #expect(truth.errors.isEmpty)
        #expect(truth.images.map(\.masks.count) == [25, 72, 21, 33, 37, 105, 39, 531, 400, 91, 101, 96])
        #expect(truth.images[0].id == "0323e81d23d9" && truth.images[0].cellType == "cort")
        #expect(truth.images.allSatisfy { $0.width == 704 && $0.height == 520 })
    }

    @Test func aMalformedRowDropsOnlyItsImage() throws {
        let csv = """
            id,annotation,width,height,cell_type
            good,1 5 20 5,10,10,astro
            bad,1 5,10,10,cort
            bad,95 10,10,10,cort
            good,50 3,10,10,astro
            odd,1 2 3,10,10,cort
            empty,,10,10,cort
            """
        let path = try temporary("train.csv", csv)
        let truth = try GroundTruth.read(path: path)
        #expect(truth.images.map(\.id) == ["good", "empty"])
        #expect(truth.images[1].masks.isEmpty)
        #expect(truth.images[0].masks.map(\.area) == [10, 3])
        #expect(truth.errors.map(\.location) == ["row 4", "row 6"])
        #expect(truth.errors[0].image == "bad")
        #expect(truth.errors[0].description.contains(path) && truth.errors[0].description.contains("row 4"))
        #expect(truth.errors[0].reason.contains("ends past"))
    }

    @Test func aByteOrderMarkAndCRLFLineEndsAreRead() throws {
        let path = try temporary("bom.csv", "\u{FEFF}id,annotation,width,height,cell_type\r\na,1 2,10,10,astro\r\n")
        let truth = try GroundTruth.read(path: path)
        #expect(truth.errors.isEmpty && truth.images.first?.masks.first?.area == 2 && truth.images.first?.cellType == "astro")
    }

    @Test func aCSVWithoutTheColumnsIsRefused() throws {
        let path = try temporary("x.csv", "image,rle\na,1 2\n")
        #expect(throws: TruthFileError.self) { try GroundTruth.read(path: path) }
        #expect(throws: TruthFileError.self) { try GroundTruth.read(path: "/nonexistent/truth.csv") }
    }

    @Test func readsCOCOWithStringCountsListCountsAndPolygons() throws {
        let square = rect(2, 3, 4, 5, image: (704, 520))
        let compressed = COCORLE(mask: square).compressedString
        let counts = COCORLE(mask: rect(20, 20, 3, 3, image: (704, 520))).counts
        let json = """
            {"images": [{"id": 7, "file_name": "train/0323e81d23d9.png", "width": 704, "height": 520},
                        {"id": 8, "file_name": "other.png", "width": 704, "height": 520}],
             "categories": [{"id": 1, "name": "shsy5y"}, {"id": 3, "name": "cort"}],
             "annotations": [
               {"id": 1, "image_id": 7, "category_id": 3, "segmentation": {"size": [520, 704], "counts": "\(compressed)"}},
               {"id": 2, "image_id": 7, "category_id": 3, "segmentation": {"size": [520, 704], "counts": \(counts)}},
               {"id": 3, "image_id": 7, "category_id": 3, "segmentation": [[100, 100, 110, 100, 110, 106, 100, 106]]},
               {"id": 4, "image_id": 8, "category_id": 1, "segmentation": {"size": [520, 700], "counts": [364000]}}
             ]}
            """
        let path = try temporary("val.json", json)
        let truth = try GroundTruth.read(path: path)
        #expect(truth.images.map(\.id) == ["train/0323e81d23d9"], "named by its path without extension")
        let image = truth.images[0]
        #expect(image.cellType == "cort")
        #expect(image.masks[0] == square)
        #expect(image.masks[1].area == 9 && image.masks[1].box == PixelRect(x: 20, y: 20, width: 3, height: 3))
        #expect(image.masks[2].area == 60 && image.masks[2].box == PixelRect(x: 100, y: 100, width: 10, height: 6))
        #expect(truth.errors.count == 1)
        #expect(truth.errors[0].location == "annotation 3 (id 4)" && truth.errors[0].image == "other")
    }

    /// Found by fuzzing: Foundation's path methods trap on "//" before a letter beyond ASCII.
    @Test func cocoFileNamesBecomeIDsWithoutTrapping() throws {
        let json = """
            {"images": [{"id": 1, "file_name": "scans//étoile.png", "width": 8, "height": 8},
                        {"id": 2, "file_name": "/data//plaque/Zelle.ä.tif", "width": 8, "height": 8},
                        {"id": 3, "file_name": "b.d/x", "width": 8, "height": 8}],
             "categories": [{"id": 1, "name": "astro"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]]},
                             {"id": 2, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]]},
                             {"id": 3, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]]}]}
            """
        let truth = try GroundTruth.read(path: try temporary("names.json", json))
        #expect(truth.images.map(\.id).sorted() == ["Zelle.ä", "b.d/x", "scans/étoile"])
    }

    /// As in the competition's COCO files: Kaggle id strings as ids, counts lists without a size.
    @Test func readsCOCOKeyedByKaggleIDs() throws {
        let truth = try GroundTruth.read(path: demoTruthPath)
        let image = truth.images[0]
        let annotations: [[String: Any]] = image.masks.enumerated().map { k, m in
            let rle = COCORLE(mask: m)
            let segmentation: [String: Any] = k % 2 == 0
                ? ["counts": rle.counts]
                : ["size": [520, 704], "counts": rle.compressedString]  // may hold a backslash: JSON escapes it
            return ["id": "\(k)", "image_id": image.id, "category_id": 3, "segmentation": segmentation]
        }
        let object: [String: Any] = [
            "images": [["id": image.id, "width": 704, "height": 520, "file_name": "train/\(image.id).png"]],
            "categories": [["id": 1, "name": "shsy5y"], ["id": 3, "name": "cort"]],
            "annotations": annotations,
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        let read = try GroundTruth.read(path: try temporary("val_fold0.json", json))
        #expect(read.errors.isEmpty)
        var named = image
        named.id = "train/\(image.id)"
        #expect(read.images == [named])
    }

    @Test func polygonsCoverPixelsWhoseCentreIsInside() {
        // A right triangle below the diagonal x = y: row y holds the y pixels with x < y, since
        // a centre on the diagonal counts as outside the closing edge.
        let m = GroundTruth.rasterize(polygons: [[0, 0, 10, 10, 0, 10]], width: 20, height: 20)
        #expect(m.area == 45)
        #expect(m[0, 9] && m[8, 9] && !m[9, 9] && !m[0, 0])
    }
}

/// Annotations as spreadsheets and scripts write them, and annotations written twice over.
@Suite struct TruthFileTests {
    func temporary(_ name: String, _ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-truth-\(UUID().uuidString)-\(name)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test func aRowWrittenTwiceIsCountedOnceAndNamed() throws {
        let csv = "id,annotation,width,height,cell_type\ngood,1 5,10,10,astro\ngood,50 3,10,10,astro\ngood,1 5,10,10,astro\n"
        let path = try temporary("train.csv", csv)
        let truth = try GroundTruth.read(path: path)
        #expect(truth.images.first?.masks.count == 2)
        #expect(truth.repeats == ["\(path), row 4 (image good): repeats row 2, the same cell; counted once"])
        #expect(truth.errors.isEmpty)
    }

    /// Found by fuzzing (`truth-coco`): a segmentation that is a string, not polygons or an RLE,
    /// stopped `eval` (Foundation traps writing it back to compare it with the others).
    @Test func aSegmentationOfAnotherKindIsNamedNotACrash() throws {
        let json = """
            {"annotations": [{"category_id": 9, "image_id": 1, "segmentation": "cort"}],
             "images": [{"file_name": "x.png", "height": 520, "id": 1, "width": 704}]}
            """
        let truth = try GroundTruth.parseCOCO(Data(json.utf8), file: "truth.json")
        #expect(truth.errors.count == 1 && truth.errors[0].description.contains("truth.json"), "\(truth.errors)")
    }

    @Test func quotedFieldsCRLFAndAByteOrderMarkAreRead() throws {
        let csv = "\u{FEFF}\"id\",\"annotation\",\"width\",\"height\",\"cell_type\"\r\n\"b/x\",\"1 5\",\"10\",\"10\",\"astro\"\r\n"
        let truth = try GroundTruth.read(path: try temporary("quoted.csv", csv))
        #expect(truth.errors.isEmpty && truth.images.map(\.id) == ["b/x"] && truth.images[0].masks[0].area == 5)
    }
}
