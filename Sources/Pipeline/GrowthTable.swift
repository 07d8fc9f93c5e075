import JobStore

/// Cells per (plate, well, type) at each of the plate's time points, oldest first: the numbers
/// behind `query --over-time` and the report's growth curves. A well with no cell of a type at a
/// time point counts 0 there.
public struct GrowthTable: Sendable {
    public struct Row: Sendable {
        public var plate: String
        public var well: String
        public var cellType: String
        public var cells: [Int]
    }

    public let times: [TimePoint?]
    public let rows: [Row]

    public init(_ counts: [WellCount]) {
        let times = Set(counts.map(\.timepoint)).sorted { a, b in
            switch (a, b) {
            case (nil, _): return b != nil
            case (_, nil): return false
            case let (a?, b?): return a < b
            }
        }
        let column = Dictionary(uniqueKeysWithValues: times.enumerated().map { ($0.element, $0.offset) })
        var byKey: [[String]: [Int]] = [:]
        for c in counts {
            byKey[[c.plate, c.well, c.cellType], default: Array(repeating: 0, count: times.count)][column[c.timepoint]!] += c.cells
        }
        self.times = times
        rows = byKey.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { Row(plate: $0[0], well: $0[1], cellType: $0[2], cells: byKey[$0]!) }
    }
}
