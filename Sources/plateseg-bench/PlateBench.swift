import ArgumentParser
import Foundation
import JobStore

/// End-to-end throughput: `plateseg run` on a plate folder with 1, 2, … worker processes, each
/// on a fresh database, and where the time went (inference, merge, the rest: queue, start-up,
/// waiting for the last jobs).
struct PlateBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plate", abstract: "Images per hour of `plateseg run` on a plate folder.")

    @Argument(help: "Plate folder.") var plateFolder: String
    @Option var manifest: String?
    @Option(help: "Folder with the model files.") var modelsDir = "models"
    @Option(help: "Comma-separated networks.") var models = "yolox,maskrcnn,upernet"
    @Option(help: "Comma-separated worker process counts.") var workers = "1,2"
    @Option(parsing: .upToNextOption, help: "What the networks compute in, one run each: as `run --precision` takes it (fp32, bf16, int8, auto, bf16,upernet=int8).")
    var precisions = ["auto"]

    func run() throws {
        let plateseg = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("plateseg")
        print("| precision | workers | images | tiles | wall s | images/hour | tiles/hour | inference | merge | queue, start-up, idle | peak worker MiB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        let runs = precisions.flatMap { p in workers.split(separator: ",").compactMap { Int($0) }.map { (String(p), $0) } }
        for (precision, n) in runs {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-platebench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let db = dir.appendingPathComponent("plate.sqlite").path
            let p = Process()
            p.executableURL = plateseg
            p.arguments = ["run", plateFolder, "--plate", "bench", "--db", db, "--models-dir", modelsDir, "--models", models,
                           "--workers", "\(n)", "--precision", precision] + (manifest.map { ["--manifest", $0] } ?? [])
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            let start = Date()
            try p.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let wall = Date().timeIntervalSince(start)
            let store = try openJobStore(db, settings: StoreSettings(mustExist: true))
            let images = try store.progress(plate: "bench").first?.imagesMerged ?? 0
            let timed = try store.jobTimes(plate: "bench")
            let times = Dictionary(uniqueKeysWithValues: timed.map { ($0.kind, $0.seconds) })
            let networks = models.split(separator: ",").count
            let tiles = (timed.first { $0.kind == InferJob.kind }?.jobs ?? 0) / max(1, networks)
            let capacity = wall * Double(n)
            let infer = (times[InferJob.kind] ?? 0) / capacity, merge = (times[MergeJob.kind] ?? 0) / capacity
            let peak = output.firstMatch(of: try Regex("peak worker memory (\\d+) MiB")).flatMap { $0.output[1].substring }.map(String.init) ?? "?"
            print(String(format: "| %@ | %d | %d | %d | %.1f | %.0f | %.0f | %.1f%% | %.1f%% | %.1f%% | %@ |", precision as NSString, n, images, tiles, wall,
                         Double(images) / wall * 3600, Double(tiles) / wall * 3600, infer * 100, merge * 100, (1 - infer - merge) * 100, peak))
        }
    }
}
