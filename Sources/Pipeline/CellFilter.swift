import Ensemble
import Foundation
import JobStore

/// What `query` and `export` are asked to select, read as a lab user writes it (`b3`, `B3` and
/// `B03` are one well; `Astro` is `astro`) and checked against what the database holds: a plate,
/// well, time point or cell type it does not hold is one line naming those it does, never an
/// empty answer that looks like "no cells".
public enum CellFilter {
    /// The cell types the networks tell apart.
    public static let cellTypes = EnsembleConfig.cellTypes

    public static func query(_ db: any JobStore, plate: String?, well: String?, cellType: String?, timepoint: String?) throws -> CellQuery {
        let plates = try db.plates()
        if let plate, !plates.contains(where: { $0.name == plate }) {
            throw FilterError("no plate \(plate) in \(db.location); " + listed("its plates are", plates.map(\.name).sorted(), none: "it holds no plate"))
        }
        var q = CellQuery(plate: plate)
        let place = plate.map { "on plate \($0)" } ?? "on any plate"
        if let well {
            guard let normalized = WellName.normalized(well) else {
                throw FilterError("--well \(well) is not a well name; give a row and a column, e.g. B03")
            }
            let wells = Set(try db.images(plate: plate).filter(\.segmented).compactMap(\.well))
            guard wells.contains(normalized) else {
                let sorted = wells.sorted { (WellName.position($0)?.row ?? 0, WellName.position($0)?.column ?? 0) < (WellName.position($1)?.row ?? 0, WellName.position($1)?.column ?? 0) }
                throw FilterError("no well \(normalized) \(place); " + listed("its \(wells.count) wells are", sorted, none: "no images were submitted"))
            }
            q.well = normalized
        }
        if let cellType {
            guard let known = cellTypes.first(where: { $0 == cellType.lowercased() }) else {
                throw FilterError("--cell-type \(cellType) is not a cell type; the types are \(cellTypes.joined(separator: ", "))")
            }
            q.cellType = known
        }
        if let timepoint {
            let label = TimePoint(parsing: timepoint)?.label ?? timepoint
            let times = try db.identity(plate: plate).flatMap(\.timepoints)
            guard times.contains(where: { $0.label == label }) else {
                let distinct = Array(Set(times)).sorted()
                throw FilterError("no time point \(timepoint) \(place); " + listed("its time points are", distinct.map(\.label), none: "its images carry no time point"))
            }
            q.timepoint = label
        }
        return q
    }

    private static func listed(_ lead: String, _ names: [String], none: String) -> String {
        guard !names.isEmpty else { return none }
        let shown = names.count <= 12 ? names : Array(names.prefix(6)) + ["…"] + Array(names.suffix(3))
        return "\(lead) \(shown.joined(separator: ", "))"
    }
}

public struct FilterError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
