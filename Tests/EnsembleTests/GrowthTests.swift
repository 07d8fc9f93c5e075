import Foundation
import Imaging
import Testing
@testable import Ensemble

/// An astrocyte body with a process the detectors missed, and an SH-SY5Y cell beside it.
///
/// Image 100 x 40. Mask R-CNN outlines the astrocyte body (10..<30, 10..<30) and the SH-SY5Y
/// cell (60..<80, 10..<30). UPerNet also sees a process running right from the body, rows
/// 18..<22, up to the SH-SY5Y cell at x 60, and a strip x 80..<95 on the SH-SY5Y cell's right
/// that belongs to no cell; it is less sure of these (0.4) than of the cell bodies (0.9).
enum ProcessScene {
    static let width = 100, height = 40
    static let tile = PixelRect(x: 0, y: 0, width: width, height: height)
    static let body = PixelRect(x: 10, y: 10, width: 20, height: 20)
    static let neighbour = PixelRect(x: 60, y: 10, width: 20, height: 20)

    static func inside(_ r: PixelRect, _ x: Int, _ y: Int) -> Bool { (r.x..<r.maxX).contains(x) && (r.y..<r.maxY).contains(y) }

    static func foreground(_ x: Int, _ y: Int) -> Float {
        if inside(body, x, y) || inside(neighbour, x, y) { return 0.9 }
        return (18..<22).contains(y) && (30..<95).contains(x) ? 0.4 : 0.05
    }

    static var artifacts: [TileArtifact] {
        let mr = TileArtifact(model: "maskrcnn", tile: tile, classes: PerfectModels.classes, detections: [
            Detection(box: Box(x0: 10, y0: 10, x1: 30, y1: 30), score: 0.9, classProbabilities: [0, 1, 0]),
            Detection(box: Box(x0: 60, y0: 10, x1: 80, y1: 30), score: 0.8, classProbabilities: [1, 0, 0]),
        ], masks: [softMask(1), softMask(1)])
        let n = tile.area
        var planes = [Float](repeating: 0, count: 4 * n)
        for y in 0..<height {
            for x in 0..<width {
                let fg = foreground(x, y)
                planes[y * width + x] = 1 - fg
                planes[2 * n + y * width + x] = fg  // astro
            }
        }
        let up = TileArtifact(model: "upernet", tile: tile, classes: PerfectModels.classes,
                              semantic: ProbabilityMap(channels: 4, width: width, height: height, probabilities: planes))
        return [mr, up]
    }

    /// The true cells: the astrocyte with its whole process, and the SH-SY5Y cell.
    static var truth: [Mask] {
        var astro = [UInt8](repeating: 0, count: tile.area), other = astro
        for y in 0..<height {
            for x in 0..<width {
                if inside(body, x, y) || ((18..<22).contains(y) && (30..<60).contains(x)) { astro[y * width + x] = 1 }
                if inside(neighbour, x, y) { other[y * width + x] = 1 }
            }
        }
        return [Mask(imageWidth: width, imageHeight: height, pixels: astro),
                Mask(imageWidth: width, imageHeight: height, pixels: other)]
    }

    /// The vote is taken inside the boxes only and UPerNet has no say in it: the masks are Mask
    /// R-CNN's, so growth is all that changes them (whatever weights a fit tries).
    static var config: EnsembleConfig {
        var c = EnsembleConfig()
        c.modelWeights = [.maskrcnn: 1, .upernet: 0]
        c.boxMargin = 0
        c.minInstanceScore = 0.1
        return c
    }
}

@Suite struct GrowthTests {
    func merge(_ config: EnsembleConfig, models: Set<EnsembleModel> = [.maskrcnn, .upernet]) throws -> MergedImage {
        try Merger(config: config).merge(image: "process", width: ProcessScene.width, height: ProcessScene.height,
                                         artifacts: ProcessScene.artifacts, models: models)
    }

    @Test func anAstrocyteGrowsAlongItsProcessUpToItsNeighbour() throws {
        var config = ProcessScene.config
        let plain = try merge(config)
        #expect(plain.instances.map(\.cellType) == ["astro", "shsy5y"])
        #expect(plain.instances.map(\.area) == [400, 400])

        config.growth.foregroundThreshold = 0.3
        config.growth.radiusByType = ["astro": 20]
        let near = try merge(config)
        #expect(near.instances[0].area == 400 + 20 * 4)  // 20 steps along the 4-pixel-wide process
        #expect(near.instances[0].box == PixelRect(x: 10, y: 10, width: 40, height: 20))

        // Further out it stops at the SH-SY5Y cell, which keeps every pixel; neither grows past
        // foreground into background, and the SH-SY5Y cell, not listed, does not grow at all.
        config.growth.radiusByType = ["astro": 80]
        let far = try merge(config)
        #expect(far.instances.map(\.mask) == ProcessScene.truth)
        #expect(far.instances.map(\.cellType) == ["astro", "shsy5y"])
        #expect(far.instances[0].mask.intersectionArea(far.instances[1].mask) == 0)
        #expect(try COCORLE(compressed: far.instances[0].rle, width: 100, height: 40).mask() == far.instances[0].mask)
        #expect(SartoriusMetric.score(predicted: far.instances.map(\.mask), truth: ProcessScene.truth).score == 1)

        // A foreground threshold above UPerNet's certainty on the process leaves nothing to grow into.
        config.growth.foregroundThreshold = 0.5
        #expect(try merge(config).instances.map(\.area) == [400, 400])
    }

    @Test func withoutUPerNetNothingGrows() throws {
        var config = ProcessScene.config
        config.growth = ForegroundGrowth(radiusByType: ["astro": 80], foregroundThreshold: 0.3)
        #expect(try merge(config).instances.map(\.area) == [520, 400])
        #expect(try merge(config, models: [.maskrcnn]).instances.map(\.area) == [400, 400])
    }

    @Test func cellsGrowingTowardsEachOtherSplitTheGapByDistance() {
        // Two 2 x 2 cells at x 0 and x 18 of a 20 x 2 strip of foreground: the 16 free columns
        // between them go 8 and 8.
        let width = 20, height = 2
        func cell(_ x: Int) -> CellInstance {
            var bits = [UInt8](repeating: 0, count: width * height)
            for y in 0..<2 { for dx in 0..<2 { bits[y * width + x + dx] = 1 } }
            let mask = Mask(imageWidth: width, imageHeight: height, pixels: bits)
            return CellInstance(cellType: "astro", classProbabilities: [0, 1, 0], score: 1, mask: mask,
                                rle: COCORLE(mask: mask).compressedString)
        }
        var cells = [cell(0), cell(18)]
        ForegroundGrowth(radiusByType: ["astro": 30])
            .grow(&cells, foreground: [Float](repeating: 1, count: width * height), width: width, height: height)
        #expect(cells.map(\.area) == [20, 20] && cells.map(\.box.width) == [10, 10])
        #expect(cells[0].mask.intersectionArea(cells[1].mask) == 0)
    }

    @Test func badGrowthSettingsAreNamed() throws {
        var config = EnsembleConfig()
        config.growth.radiusByType = ["glia": 10]
        #expect(config.problem?.contains("glia") == true)
        config.growth.radiusByType = ["astro": -1]
        #expect(config.problem?.contains("negative") == true)
        config.growth.radiusByType = ["astro": 10]
        config.growth.foregroundThreshold = 1.5
        #expect(config.problem?.contains("foregroundThreshold") == true)
        // An older config without growth loads with none.
        let old = try JSONDecoder().decode(EnsembleConfig.self, from: Data(#"{"minInstanceScore": 0.4}"#.utf8))
        #expect(old.growth == ForegroundGrowth())
        config.growth.foregroundThreshold = 0.3
        #expect(try JSONDecoder().decode(EnsembleConfig.self, from: config.jsonData()).growth == config.growth)
    }

    /// The fit finds how far astrocytes reach and how faint a process may be, and leaves the type
    /// with no processes alone. Either alone changes nothing here: reach is searched with the threshold.
    @Test func theFitChoosesEachTypesReach() throws {
        let image = CalibrationImage(image: "process", width: ProcessScene.width, height: ProcessScene.height,
                                     artifacts: ProcessScene.artifacts, truth: ProcessScene.truth)
        var fitter = WeightFitter(start: ProcessScene.config)
        fitter.passes = 1
        let fitted = try fitter.fit([image], split: "a", models: [.maskrcnn, .upernet])
        #expect(fitted.growth.radius("astro") == 40)
        #expect(fitted.growth.foregroundThreshold < 0.4)
        #expect(fitted.growth.radius("shsy5y") == 0)
        #expect(fitted.fit?.score == 1)
    }
}
