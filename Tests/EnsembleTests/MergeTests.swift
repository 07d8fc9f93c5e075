import Foundation
import Imaging
import Testing
@testable import Ensemble

/// A whole-image tile with a background-only UPerNet map, for cases about detections alone.
func blankSemantic(_ tile: PixelRect, fg: Float = 0) -> TileArtifact {
    var planes = [Float](repeating: 0, count: 4 * tile.area)
    for i in 0..<tile.area { planes[i] = 1 - fg; planes[tile.area + i] = fg }
    return TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes,
                        semantic: ProbabilityMap(channels: 4, width: tile.width, height: tile.height, probabilities: planes))
}

func softMask(_ value: Float, size: Int = 28) -> ProbabilityMap {
    ProbabilityMap(channels: 1, width: size, height: size, probabilities: [Float](repeating: value, count: size * size))
}

@Suite struct MergeTests {
    static let demo = ["0323e81d23d9", "08f52aa2add3", "0f08d640930b"]

    /// Perfect model outputs derived from the real annotations, seen through real tiling: the
    /// ensemble must give back nearly the truth (the 28x28 soft masks and the non-overlap rule
    /// on overlapping annotations cost a little).
    @Test(arguments: demo)
    func perfectModelsOnDemoTruthGiveBackTheTruth(image: String) throws {
        let truth = try #require(GroundTruth.read(path: demoTruthPath).images.first { $0.id == image })
        let artifacts = PerfectModels.artifacts(masks: truth.masks, cellType: truth.cellType!, width: 704, height: 520)
        let merger = Merger()
        let merged = try merger.merge(image: image, width: 704, height: 520, artifacts: artifacts)
        #expect(merged.cellType == truth.cellType)
        #expect(merged.instances.allSatisfy { $0.cellType == truth.cellType })
        let score = SartoriusMetric.score(predicted: merged.instances.map(\.mask), truth: truth.masks).score
        var alone: [EnsembleModel: Double] = [:]
        for m in EnsembleModel.allCases {
            let single = try merger.merge(image: image, width: 704, height: 520, artifacts: artifacts, models: [m])
            alone[m] = SartoriusMetric.score(predicted: single.instances.map(\.mask), truth: truth.masks).score
        }
        print("merge \(image): ensemble \(score), alone \(alone)")
        #expect(score > 0.8)
        #expect(score >= alone[.yolox]! && score >= alone[.upernet]!)
        // Instances never overlap and each carries its mask as a decodable COCO RLE.
        var seen = Set<Int>()
        for cell in merged.instances {
            let coco = try COCORLE(compressed: cell.rle, width: 704, height: 520)
            #expect(coco.mask() == cell.mask)
            for y in 0..<cell.box.height {
                for x in 0..<cell.box.width where cell.mask.bits[y * cell.box.width + x] != 0 {
                    #expect(seen.insert((cell.box.y + y) * 704 + cell.box.x + x).inserted)
                }
            }
        }
    }

    /// Each detector misses a different quarter of the real cells. The vote recovers a cell
    /// Mask R-CNN missed from the YOLOX box and UPerNet's foreground, and one YOLOX missed
    /// from Mask R-CNN alone, so the ensemble beats every model alone.
    @Test func theVoteRecoversCellsThatOneDetectorMissed() throws {
        let id = "0f08d640930b"
        let truth = try #require(GroundTruth.read(path: demoTruthPath).images.first { $0.id == id })
        let full = PerfectModels.artifacts(masks: truth.masks, cellType: "shsy5y", width: 704, height: 520)
        // Drop detections by the cell they came from: its box is the truth box clipped to the tile.
        func cell(of d: Detection, in tile: PixelRect) -> Int? {
            truth.masks.firstIndex { m in
                let b = d.box.offsetBy(dx: Float(tile.x), dy: Float(tile.y))
                return Int(b.x0) == max(m.box.x, tile.x) && Int(b.y0) == max(m.box.y, tile.y)
                    && Int(b.x1) == min(m.box.maxX, tile.maxX) && Int(b.y1) == min(m.box.maxY, tile.maxY)
            }
        }
        let artifacts = full.map { a -> TileArtifact in
            let drop = a.model.hasPrefix("mask") ? 0 : 2
            guard !a.model.hasPrefix("upernet") else { return a }
            let keep = a.detections.indices.filter { (cell(of: a.detections[$0], in: a.tile) ?? 1) % 4 != drop }
            return TileArtifact(model: a.model, tile: a.tile, classes: a.classes, detections: keep.map { a.detections[$0] },
                                masks: a.masks.isEmpty ? [] : keep.map { a.masks[$0] })
        }
        func score(_ models: Set<EnsembleModel>) throws -> Double {
            let merged = try Merger().merge(image: id, width: 704, height: 520, artifacts: artifacts, models: models)
            return SartoriusMetric.score(predicted: merged.instances.map(\.mask), truth: truth.masks).score
        }
        let ensemble = try score(Set(EnsembleModel.allCases))
        let alone = try EnsembleModel.allCases.map { try score([$0]) }
        print("missed cells \(id): ensemble \(ensemble), alone \(alone)")
        #expect(ensemble > 0.8)
        #expect(alone.allSatisfy { ensemble > $0 + 0.1 })
    }

    @Test func theMergeDrawsItsOverlayOnTheRealImage() throws {
        let id = "0323e81d23d9"
        let truth = try #require(GroundTruth.read(path: demoTruthPath).images.first { $0.id == id })
        let merged = try Merger().merge(image: id, width: 704, height: 520,
                                        artifacts: PerfectModels.artifacts(masks: truth.masks, cellType: "cort", width: 704, height: 520))
        let gray = try PNGCodec.readGray(demoImagePath(id))
        let rgba = Overlay.render(gray, instances: merged.instances.map { ($0.mask, $0.cellType) })
        var outlined = 0
        for p in 0..<(704 * 520) where rgba[4 * p] == 204 && rgba[4 * p + 1] == 121 && rgba[4 * p + 2] == 167 { outlined += 1 }
        #expect(outlined > 25 * 20 && outlined < merged.instances.map(\.area).reduce(0, +))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("\(id)-\(UUID()).png").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try merged.writeOverlay(on: gray, to: out)
        #expect(try PNGCodec.readHeader(out).color)
    }

    /// Tiles [0, 120) and [80, 200): a cell at x 117...133 is cut by the first tile's right
    /// edge and whole in the second; a cell at x 94...106 is whole in both.
    @Test func cellsOnASeamAreTakenWholeAndOnce() throws {
        let size = (200, 100)
        let cut = disc(125, 50, 8, image: size), both = disc(100, 20, 6, image: size)
        let layout = TileLayout(size: 120, overlap: 40)
        #expect(layout.tiles(width: 200, height: 100).map(\.x) == [0, 80])
        let artifacts = PerfectModels.artifacts(masks: [cut, both], cellType: "astro", width: 200, height: 100, layout: layout)
        for models: Set<EnsembleModel> in [Set(EnsembleModel.allCases), [.maskrcnn], [.yolox]] {
            let merged = try Merger().merge(image: "seam", width: 200, height: 100, artifacts: artifacts, models: models)
            #expect(merged.instances.count == 2, "\(models)")
            let bestCut = merged.instances.map { $0.mask.iou(models == [.yolox] ? rect(117, 42, 16, 16, image: size) : cut) }.max() ?? 0
            #expect(bestCut > 0.85, "\(models)")
        }
    }

    /// A cell 50 px wide on tiles overlapping by 40 is cut in both tiles: the two pieces are
    /// one instance covering the whole cell.
    @Test func aCellLargerThanTheOverlapIsJoinedFromItsPieces() throws {
        let size = (200, 100)
        let big = rect(75, 30, 50, 20, image: size)
        let artifacts = PerfectModels.artifacts(masks: [big], cellType: "cort", width: 200, height: 100,
                                                layout: TileLayout(size: 120, overlap: 40))
        for models: Set<EnsembleModel> in [Set(EnsembleModel.allCases), [.maskrcnn], [.yolox]] {
            let merged = try Merger().merge(image: "big", width: 200, height: 100, artifacts: artifacts, models: models)
            #expect(merged.instances.count == 1, "\(models)")
            #expect((merged.instances.first?.mask.iou(big) ?? 0) > 0.97, "\(models)")
        }
    }

    /// Where UPerNet tiles overlap, each counts more the farther the pixel is from its inner edge.
    @Test func semanticMapsAreBlendedAcrossTheOverlap() throws {
        let left = PixelRect(x: 0, y: 0, width: 120, height: 10), right = PixelRect(x: 80, y: 0, width: 120, height: 10)
        let stitched = try Stitcher.stitch(image: "blend", width: 200, height: 10,
                                           artifacts: [blankSemantic(left, fg: 1), blankSemantic(right, fg: 0)],
                                           models: [.upernet], config: EnsembleConfig())
        let fg = try #require(stitched.semantic).foreground
        #expect(fg[5 * 200 + 50] == 1 && fg[5 * 200 + 150] == 0)
        // x = 85: the left tile is 34 px from its inner edge, the right 5 px: (34 + 1) / (35 + 6).
        #expect(abs(fg[5 * 200 + 85] - 35.0 / 41) < 1e-6)
        #expect(abs(fg[5 * 200 + 115] - 5.0 / 41) < 1e-6)
        let across = (80..<120).map { fg[5 * 200 + $0] }
        #expect(zip(across, across.dropFirst()).allSatisfy { $0 > $1 })
    }

    /// A UPerNet trained with a fifth "boundary" class: boundary pixels are no cell's, so two
    /// touching cells stay two components.
    @Test func aBoundaryClassKeepsTouchingCellsApart() throws {
        let tile = PixelRect(x: 0, y: 0, width: 40, height: 20)
        var planes = [Float](repeating: 0, count: 5 * tile.area)
        for y in 0..<20 {
            for x in 0..<40 {
                let i = y * 40 + x
                if y < 5 || y >= 15 || x < 5 || x >= 35 { planes[i] = 1 }          // background
                else if x == 20 { planes[4 * tile.area + i] = 1 }                 // boundary
                else { planes[2 * tile.area + i] = 1 }                            // astro
            }
        }
        let up = TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes + ["boundary"],
                              semantic: ProbabilityMap(channels: 5, width: 40, height: 20, probabilities: planes))
        let merged = try Merger().merge(image: "b", width: 40, height: 20, artifacts: [up], models: [.upernet])
        #expect(merged.instances.map(\.area) == [150, 140] || merged.instances.map(\.area) == [140, 150])
        #expect(merged.cellType == "astro")
        let other = TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes + ["debris"],
                                 semantic: ProbabilityMap(channels: 5, width: 40, height: 20, probabilities: planes))
        #expect(throws: EnsembleError.self) { try Merger().merge(image: "b", width: 40, height: 20, artifacts: [other], models: [.upernet]) }
    }

    @Test func boxesOfTwoModelsFuseIntoOneInstanceScoredByAgreement() throws {
        let tile = PixelRect(x: 0, y: 0, width: 100, height: 100)
        let astro: [Float] = [0, 1, 0]
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes, detections: [
            Detection(box: Box(x0: 10, y0: 10, x1: 30, y1: 30), score: 0.9, classProbabilities: astro),
            Detection(box: Box(x0: 60, y0: 60, x1: 80, y1: 80), score: 0.9, classProbabilities: astro),
        ], masks: [softMask(1), softMask(1)])
        let yx = TileArtifact(model: "yolox", tile: tile, classes: PerfectModels.classes, detections: [
            Detection(box: Box(x0: 12, y0: 10, x1: 32, y1: 30), score: 0.8, classProbabilities: astro),
        ])
        // UPerNet undecided (0.5 everywhere), so the pixels follow the detectors.
        let up = blankSemantic(tile, fg: 0.5)
        var config = EnsembleConfig()
        config.minInstanceScore = 0.5
        let merged = try Merger(config: config).merge(image: "fuse", width: 100, height: 100, artifacts: [mr, yx, up])
        // The lone Mask R-CNN box scores 0.9 / 2 = 0.45 < 0.5; the agreed one (0.9 + 0.8) / 2.
        #expect(merged.instances.count == 1)
        #expect(abs(merged.instances[0].score - 0.85) < 1e-6)
        config.minInstanceScore = 0.4
        let both = try Merger(config: config).merge(image: "fuse", width: 100, height: 100, artifacts: [mr, yx, up])
        #expect(both.instances.map(\.score).map { ($0 * 100).rounded() } == [85, 45])
        // The fused box lies between the two boxes, weighted by confidence: x0 = (0.9·10 + 0.8·12) / 1.7.
        let clusters = Merger(config: config).fuseBoxes(
            try Stitcher.stitch(image: "fuse", width: 100, height: 100, artifacts: [mr, yx, up],
                                models: Set(EnsembleModel.allCases), config: config), models: Set(EnsembleModel.allCases))
        #expect(abs(Double(clusters[0].box.x0) - (0.9 * 10 + 0.8 * 12) / 1.7) < 1e-4)
    }

    @Test func eachCellTypeMayHaveItsOwnScoreThreshold() throws {
        let tile = PixelRect(x: 0, y: 0, width: 100, height: 100)
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes, detections: [
            Detection(box: Box(x0: 10, y0: 10, x1: 30, y1: 30), score: 0.6, classProbabilities: [0.1, 0.8, 0.1]),
            Detection(box: Box(x0: 60, y0: 60, x1: 80, y1: 80), score: 0.6, classProbabilities: [0.8, 0.1, 0.1]),
        ], masks: [softMask(1), softMask(1)])
        var config = EnsembleConfig()
        config.modelWeights = [.maskrcnn: 1]
        config.minInstanceScore = 0.5
        let artifacts = [mr, blankSemantic(tile)]
        #expect(try Merger(config: config).merge(image: "types", width: 100, height: 100, artifacts: artifacts,
                                                 models: [.maskrcnn]).instances.count == 2)
        // Faint astrocytes may pass lower, the shsy5y call must be surer.
        config.minInstanceScoreByType = ["astro": 0.2, "shsy5y": 0.7]
        let typed = try Merger(config: config).merge(image: "types", width: 100, height: 100, artifacts: artifacts,
                                                     models: [.maskrcnn])
        #expect(typed.instances.map(\.cellType) == ["astro"])
        config.minInstanceScoreByType = ["glia": 0.2]
        #expect(config.problem?.contains("glia") == true)
    }

    @Test func overlappingPixelsGoToTheHigherVote() throws {
        let tile = PixelRect(x: 0, y: 0, width: 100, height: 100)
        let p: [Float] = [1, 0, 0]
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes, detections: [
            Detection(box: Box(x0: 10, y0: 10, x1: 40, y1: 40), score: 0.6, classProbabilities: p),
            Detection(box: Box(x0: 30, y0: 10, x1: 60, y1: 40), score: 0.9, classProbabilities: p),
        ], masks: [softMask(0.95), softMask(0.7)])
        var config = EnsembleConfig()
        config.modelWeights = [.yolox: 1, .maskrcnn: 1, .upernet: 0]
        config.minInstanceScore = 0.1
        let merged = try Merger(config: config).merge(
            image: "overlap", width: 100, height: 100,
            artifacts: [mr, blankSemantic(tile), TileArtifact(model: "yolox", tile: tile, classes: PerfectModels.classes)])
        #expect(merged.instances.count == 2)
        let (first, second) = (merged.instances[0], merged.instances[1])
        #expect(first.score > second.score)  // most confident first
        #expect(first.mask.intersectionArea(second.mask) == 0)
        // The overlap x 30..<40 belongs to the less confident instance, whose vote there is higher.
        #expect(second.mask.box == PixelRect(x: 10, y: 10, width: 30, height: 30) && second.area == 900)
        #expect(first.mask.box == PixelRect(x: 40, y: 10, width: 20, height: 30))

        // The confident one kept 600 of the 900 pixels it voted for: a remnant under a 0.7 rule.
        config.minKeptFraction = 0.7
        let strict = try Merger(config: config).merge(
            image: "overlap", width: 100, height: 100,
            artifacts: [mr, blankSemantic(tile), TileArtifact(model: "yolox", tile: tile, classes: PerfectModels.classes)])
        #expect(strict.instances.map(\.area) == [900])
        #expect(strict.instances.first?.mask.box == PixelRect(x: 10, y: 10, width: 30, height: 30))
    }

    @Test func cellTypesAreAWeightedVoteOfTheModels() throws {
        let tile = PixelRect(x: 0, y: 0, width: 60, height: 60)
        let box = Box(x0: 10, y0: 10, x1: 40, y1: 40)
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes,
                              detections: [Detection(box: box, score: 0.9, classProbabilities: [0, 1, 0])], masks: [softMask(1)])
        // YOLOX lists its classes in another order: the merge maps them by name.
        let yx = TileArtifact(model: "yolox", tile: tile, classes: ["cort", "astro", "shsy5y"],
                              detections: [Detection(box: box, score: 0.8, classProbabilities: [1, 0, 0])])
        var planes = [Float](repeating: 0, count: 4 * tile.area)
        for i in 0..<tile.area { planes[3 * tile.area + i] = 1 }  // all foreground, all cort
        let up = TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes,
                              semantic: ProbabilityMap(channels: 4, width: 60, height: 60, probabilities: planes))
        let merged = try Merger().merge(image: "types", width: 60, height: 60, artifacts: [mr, yx, up])
        #expect(merged.cellType == "cort" && merged.instances.first?.cellType == "cort")
        var config = EnsembleConfig()
        config.modelWeights = [.yolox: 0.1, .maskrcnn: 4, .upernet: 0.1]
        let reweighted = try Merger(config: config).merge(image: "types", width: 60, height: 60, artifacts: [mr, yx, up])
        #expect(reweighted.cellType == "astro" && reweighted.instances.first?.cellType == "astro")
        #expect(abs(reweighted.classProbabilities.reduce(0, +) - 1) < 1e-9)
    }

    /// Two astrocytes and one confident SH-SY5Y detection: the image is what most of its cells
    /// are, however sure the one odd detection is.
    @Test func theImageTypeIsCountedFromItsCells() throws {
        let tile = PixelRect(x: 0, y: 0, width: 100, height: 40)
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes, detections: [
            Detection(box: Box(x0: 5, y0: 5, x1: 25, y1: 25), score: 0.95, classProbabilities: [1, 0, 0]),
            Detection(box: Box(x0: 40, y0: 5, x1: 60, y1: 25), score: 0.4, classProbabilities: [0, 1, 0]),
            Detection(box: Box(x0: 70, y0: 5, x1: 90, y1: 25), score: 0.4, classProbabilities: [0, 1, 0]),
        ], masks: [softMask(1), softMask(1), softMask(1)])
        var config = EnsembleConfig()
        config.minInstanceScore = 0.1
        let merged = try Merger(config: config).merge(image: "mixed", width: 100, height: 40, artifacts: [mr], models: [.maskrcnn])
        #expect(merged.instances.map(\.cellType) == ["shsy5y", "astro", "astro"])
        #expect(merged.cellType == "astro")
        #expect(merged.classProbabilities.map { ($0 * 3).rounded() } == [1, 2, 0])
        let empty = try Merger(config: config).merge(image: "none", width: 100, height: 40,
                                                     artifacts: [TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes)],
                                                     models: [.maskrcnn])
        #expect(empty.cellType == nil && empty.classProbabilities == [0, 0, 0])
    }

    @Test func cellTypesMayBeVotedWithTheirOwnWeights() throws {
        let tile = PixelRect(x: 0, y: 0, width: 60, height: 60)
        let box = Box(x0: 10, y0: 10, x1: 40, y1: 40)
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes,
                              detections: [Detection(box: box, score: 0.9, classProbabilities: [1, 0, 0])], masks: [softMask(1)])
        let yx = TileArtifact(model: "yolox", tile: tile, classes: PerfectModels.classes,
                              detections: [Detection(box: box, score: 0.8, classProbabilities: [0, 1, 0])])
        var planes = [Float](repeating: 0, count: 4 * tile.area)
        for i in 0..<tile.area { planes[2 * tile.area + i] = 1 }  // all foreground, all astro
        let up = TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes,
                              semantic: ProbabilityMap(channels: 4, width: 60, height: 60, probabilities: planes))
        var config = EnsembleConfig()
        config.modelWeights = [.yolox: 1, .maskrcnn: 4, .upernet: 0.5]
        let byMasks = try Merger(config: config).merge(image: "types", width: 60, height: 60, artifacts: [mr, yx, up])
        #expect(byMasks.instances.map(\.cellType) == ["shsy5y"])

        // Mask R-CNN outlines the cell but has no say in its type.
        config.typeWeights = [.maskrcnn: 0, .yolox: 1, .upernet: 1]
        let byTypes = try Merger(config: config).merge(image: "types", width: 60, height: 60, artifacts: [mr, yx, up])
        #expect(byTypes.instances.map(\.cellType) == ["astro"])
        #expect(byTypes.instances.map(\.mask) == byMasks.instances.map(\.mask))
        #expect(byTypes.instances.map(\.score) == byMasks.instances.map(\.score))

        // A cell only a zero-weighted model typed keeps that model's call rather than none.
        config.typeWeights = [.maskrcnn: 0]
        let alone = try Merger(config: config).merge(image: "types", width: 60, height: 60, artifacts: [mr, blankSemantic(tile)],
                                                     models: [.maskrcnn])
        #expect(alone.instances.map(\.cellType) == ["shsy5y"])

        config.typeWeights = [.yolox: -1]
        #expect(config.problem == "a model weight is negative")
        let json = config.jsonData()
        #expect(try JSONDecoder().decode(EnsembleConfig.self, from: json).typeWeights == [.yolox: -1])
    }

    @Test func eachModelAloneGivesItsOwnKindOfInstances() throws {
        let size = (120, 80)
        let cells = [disc(30, 30, 9, image: size), disc(80, 40, 12, image: size)]
        let artifacts = PerfectModels.artifacts(masks: cells, cellType: "shsy5y", width: 120, height: 80)
        let yolox = try Merger().merge(image: "x", width: 120, height: 80, artifacts: artifacts, models: [.yolox])
        // YOLOX knows only boxes: its instances are the filled boxes.
        #expect(Set(yolox.instances.map(\.area)) == Set(cells.map(\.box.area)))
        var zero = EnsembleConfig()
        zero.modelWeights = [.yolox: 0, .maskrcnn: 0, .upernet: 0]
        let boxes = try Merger(config: zero).merge(image: "x", width: 120, height: 80, artifacts: artifacts, models: [.yolox])
        #expect(boxes == yolox)  // a fitted weight of 0 does not silence a model scored alone
        let uper = try Merger().merge(image: "x", width: 120, height: 80, artifacts: artifacts, models: [.upernet])
        // UPerNet knows only foreground: its instances are the connected components.
        #expect(uper.instances.count == 2)
        #expect(cells.allSatisfy { cell in uper.instances.contains { $0.mask == cell } })
        #expect(uper.cellType == "shsy5y")
        // Touching cells become one UPerNet component.
        let touching = [rect(10, 10, 10, 10, image: size), rect(20, 10, 10, 10, image: size)]
        let joined = try Merger().merge(image: "x", width: 120, height: 80,
                                        artifacts: PerfectModels.artifacts(masks: touching, cellType: "astro", width: 120, height: 80),
                                        models: [.upernet])
        #expect(joined.instances.map(\.area) == [200])
    }

    @Test func badArtifactsNameTheImageAndTile() throws {
        let tile = PixelRect(x: 0, y: 0, width: 50, height: 50)
        let yx = TileArtifact(model: "yolox", tile: tile, classes: PerfectModels.classes)
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes)
        let merger = Merger()
        #expect(throws: EnsembleError.missingArtifacts(image: "img", model: .upernet)) {
            try merger.merge(image: "img", width: 50, height: 50, artifacts: [yx, mr])
        }
        #expect(throws: EnsembleError.self) {
            try merger.merge(image: "img", width: 50, height: 50, artifacts: [yx, mr, blankSemantic(tile),
                             TileArtifact(model: "resnet", tile: tile, classes: [])])
        }
        let wrongShape = TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes,
                                      semantic: ProbabilityMap(channels: 4, width: 25, height: 25, values: [UInt8](repeating: 0, count: 2500)))
        do {
            _ = try merger.merge(image: "img", width: 50, height: 50, artifacts: [yx, mr, wrongShape])
            Issue.record("a semantic map of the wrong size was accepted")
        } catch let e as EnsembleError {
            #expect(e.description.contains("image img") && e.description.contains("50x50+0+0") && e.description.contains("4x50x50"))
        }
        let maskless = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes,
                                    detections: [Detection(box: Box(x0: 1, y0: 1, x1: 9, y1: 9), score: 0.9, classProbabilities: [1, 0, 0])])
        #expect(throws: EnsembleError.self) { try merger.merge(image: "img", width: 50, height: 50, artifacts: [yx, maskless, blankSemantic(tile)]) }
        let alien = TileArtifact(model: "yolox", tile: tile, classes: ["neuron"],
                                 detections: [Detection(box: Box(x0: 1, y0: 1, x1: 9, y1: 9), score: 0.9, classProbabilities: [1])])
        #expect(throws: EnsembleError.self) { try merger.merge(image: "img", width: 50, height: 50, artifacts: [alien, mr, blankSemantic(tile)]) }
        #expect(throws: EnsembleError.self) { try merger.merge(image: "img", width: 40, height: 40, artifacts: [yx, mr, blankSemantic(tile)]) }
        #expect(throws: EnsembleError.self) { try merger.merge(image: "img", width: 0, height: 50, artifacts: [yx, mr, blankSemantic(tile)]) }
        // A box far outside its tile is clipped to it, not trusted.
        let stray = TileArtifact(model: "yolox", tile: tile, classes: PerfectModels.classes,
                                 detections: [Detection(box: Box(x0: 10, y0: 10, x1: 1e30, y1: 20), score: 0.9, classProbabilities: [1, 0, 0])])
        let clipped = try merger.merge(image: "img", width: 50, height: 50, artifacts: [stray, mr, blankSemantic(tile, fg: 0.5)])
        #expect(clipped.instances.map(\.box) == [PixelRect(x: 10, y: 10, width: 40, height: 10)])
        // A tile's artifact missing, or tiles all left at the networks' (0, 0).
        let layout = TileLayout(size: 30, overlap: 10).tiles(width: 50, height: 50)
        let tiles = layout.map { blankSemantic($0) }
        let dets = layout.flatMap { [TileArtifact(model: "yolox", tile: $0, classes: PerfectModels.classes),
                                     TileArtifact(model: "maskrcnn", tile: $0, classes: PerfectModels.classes)] }
        #expect(try merger.merge(image: "img", width: 50, height: 50, artifacts: dets + tiles).instances.isEmpty)
        #expect(throws: EnsembleError.missingTiles(image: "img", model: .upernet, uncovered: PixelRect(x: 30, y: 30, width: 20, height: 20))) {
            try merger.merge(image: "img", width: 50, height: 50, artifacts: dets + tiles.dropLast())
        }
        let unplaced = tiles.map { a -> TileArtifact in var a = a; a.tile = PixelRect(x: 0, y: 0, width: 30, height: 30); return a }
        do {
            _ = try merger.merge(image: "img", width: 50, height: 50, artifacts: dets + unplaced)
            Issue.record("artifacts all at (0, 0) were accepted")
        } catch let e as EnsembleError {
            #expect(e.description.contains("two upernet artifacts for this tile"))
        }
        // A model the caller did not ask for may be missing.
        #expect(try merger.merge(image: "img", width: 50, height: 50, artifacts: [mr], models: [.maskrcnn]).instances.isEmpty)
    }

    @Test func artifactsSurviveTheirStoredEncoding() throws {
        let size = (120, 80)
        let cells = [disc(30, 30, 9, image: size), disc(80, 40, 12, image: size)]
        let artifacts = PerfectModels.artifacts(masks: cells, cellType: "cort", width: 120, height: 80)
        let stored = try artifacts.map { try TileArtifact.decode($0.encoded(), name: "\($0.model)") }
        let a = try Merger().merge(image: "x", width: 120, height: 80, artifacts: artifacts)
        let b = try Merger().merge(image: "x", width: 120, height: 80, artifacts: stored)
        #expect(a == b && a.instances.count == 2)
    }
}

@Suite struct ConfigTests {
    @Test func roundTripsThroughJSONAndFillsMissingKeysWithDefaults() throws {
        var c = EnsembleConfig()
        c.modelWeights[.upernet] = 0.25
        c.pixelThreshold = 0.4
        c.fit = .init(split: "val", images: 3, score: 0.5, startScore: 0.4)
        let json = String(decoding: c.jsonData(), as: UTF8.self)
        #expect(json.contains("\"upernet\" : 0.25"))
        #expect(try JSONDecoder().decode(EnsembleConfig.self, from: c.jsonData()) == c)
        let partial = try JSONDecoder().decode(EnsembleConfig.self, from: Data(#"{"pixelThreshold": 0.6}"#.utf8))
        var expected = EnsembleConfig()
        expected.pixelThreshold = 0.6
        #expect(partial == expected)
    }

    @Test func savesAndLoads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var c = EnsembleConfig()
        c.minInstanceArea = 33
        try c.save(path: path)
        #expect(try EnsembleConfig.load(path: path) == c)
        #expect(throws: EnsembleError.self) { try c.save(path: "/nonexistent-dir/ensemble.json") }
    }

    @Test func aBrokenConfigFileNamesItself() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(UUID()).json").path
        try "{\"modelWeights\": [1, 2]}".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: EnsembleError.self) { try EnsembleConfig.load(path: path) }
        try #"{"classes": []}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: EnsembleError.self) { try EnsembleConfig.load(path: path) }
        var noClasses = EnsembleConfig()
        noClasses.classes = []
        #expect(throws: EnsembleError.self) {
            try Merger(config: noClasses).merge(image: "x", width: 10, height: 10, artifacts: [blankSemantic(PixelRect(x: 0, y: 0, width: 10, height: 10))], models: [.upernet])
        }
        do { _ = try EnsembleConfig.load(path: path) } catch { #expect("\(error)".contains(path)) }
    }

    /// An emptied config would otherwise load as the built-in defaults without a word.
    @Test func anEmptyConfigIsRefusedNotTakenForTheDefaults() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        for text in ["{}", " { } \n", ""] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: EnsembleError.self) { try EnsembleConfig.load(path: path) }
        }
        try "{}".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try EnsembleConfig.load(path: path) } catch { #expect("\(error)".contains("sets nothing")) }
    }

    /// Thresholds outside their range would run and silently keep every cell, or none.
    @Test(arguments: [(#"{"boxFusionIoU": 7}"#, "boxFusionIoU 7.0 is not between 0 and 1"),
                      (#"{"minInstanceScore": -3}"#, "minInstanceScore -3.0 is not between 0 and 1"),
                      (#"{"minInstanceScoreByType": {"astro": 2}}"#, "minInstanceScoreByType.astro 2.0 is not between 0 and 1"),
                      (#"{"minInstanceArea": -1}"#, "minInstanceArea -1.0 is negative")])
    func settingsOutOfRangeAreRefusedByName(json: String, reason: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: EnsembleError.badConfig(path: path, reason: reason)) { try EnsembleConfig.load(path: path) }
    }

    @Test func theShippedConfigIsWithinRange() throws {
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("models/ensemble.json").path
        #expect(try EnsembleConfig.load(path: shipped).problem == nil)
    }
}
