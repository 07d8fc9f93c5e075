import Imaging
import Testing

@Suite struct BoxGridTests {
    /// A 4 x 4 grid over a box 40 wide and 20 high at (100, 50): cell (r, c) holds 10 r + c.
    let grid = BoxGrid(cells: 4, over: Box(x0: 100, y0: 50, x1: 140, y1: 70))
    let values: [Float] = (0..<16).map { Float(10 * ($0 / 4) + $0 % 4) }

    func read(_ x: Float, _ y: Float) -> Float {
        grid.interpolate(grid.row(atY: y), grid.column(atX: x)) { values[$0] }
    }

    @Test func aCellsCentreReadsItsOwnValue() {
        // Column c's centre is at 100 + (c + 0.5) * 10, row r's at 50 + (r + 0.5) * 5.
        #expect(read(105, 52.5) == 0)
        #expect(read(125, 57.5) == 12)
        #expect(read(135, 67.5) == 33)
    }

    @Test func betweenCentresItInterpolatesAndBeyondThemTheEdgeHolds() {
        #expect(abs(read(110, 52.5) - 0.5) < 1e-5)
        #expect(abs(read(125, 60) - 17) < 1e-5)
        #expect(read(100, 50) == 0 && read(90, 40) == 0)
        #expect(read(139.9, 69.9) == 33 && read(200, 100) == 33)
    }

    @Test func aOneCellGridOrADegenerateBoxReadsWithinTheGrid() {
        let one = BoxGrid(cells: 1, over: Box(x0: 0, y0: 0, x1: 10, y1: 10))
        #expect(one.interpolate(one.row(atY: 3), one.column(atX: 8)) { [7][$0] } == 7)
        let flat = BoxGrid(cells: 4, over: Box(x0: 5, y0: 5, x1: 5, y1: 5))
        #expect(flat.interpolate(flat.row(atY: 5), flat.column(atX: 5)) { values[$0] } == 0)
    }

    @Test func aSoftMaskIsAProbabilityInsideItsBoxAndZeroOutside() {
        let soft = ProbabilityMap(channels: 1, width: 2, height: 2, probabilities: [0, 1, 1, 1])
        let box = Box(x0: 0, y0: 0, x1: 2, y1: 2)
        #expect(soft.softMaskProbability(over: box, x: 1.5, y: 0.5) == 1)
        #expect(soft.softMaskProbability(over: box, x: 0.5, y: 0.5) == 0)
        #expect(soft.softMaskProbability(over: box, x: 1, y: 1) == 0.75)
        #expect(soft.softMaskProbability(over: box, x: 2, y: 1) == 0, "x1 is outside")
        #expect(ProbabilityMap.probability(level: 255) == 1)
    }
}
