import ArgumentParser
import Foundation
import JobStore

/// Months of plates would keep every tile's probability maps, by far the largest part of the
/// database, although the cells are made from them once.
struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the tile outputs (probability maps) of a plate's merged images; their cells stay.",
        discussion: """
            Afterwards a merge of those images (`retry`, `run --redo-stale`) runs their tiles again first, and \
            `eval --model` and `calibrate` cannot use them. Images not merged yet keep their outputs.
            """)

    @OptionGroup var store: StoreOptions
    @Option(help: "The plate (repeat for several).") var plate: [String]

    func validate() throws {
        guard !plate.isEmpty else { throw ValidationError("--plate: name the plate to prune (`plateseg status` lists them)") }
    }

    func run() throws {
        let db = try store.open(mustExist: true)
        let known = Set(try db.progress(plate: nil).map(\.plate))
        if let unknown = plate.first(where: { !known.contains($0) }) {
            throw ValidationError("--plate \(unknown): no such plate in \(db.location) (`plateseg status` lists them)")
        }
        for name in plate {
            let pruned = try db.pruneArtifacts(plate: name)
            let size = ByteCountFormatter.string(fromByteCount: Int64(pruned.bytes), countStyle: .file)
            print("plate \(name): removed \(pruned.artifacts) tile outputs of \(pruned.images) merged images (\(size)); their cells stay")
        }
        if case .sqlite = try StoreLocation(parsing: store.db) {
            print("note: the SQLite file keeps its size and reuses the space for later plates; `sqlite3 FILE VACUUM` (no worker running) shrinks it")
        }
    }
}
