import ArgumentParser

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plateseg-bench",
        abstract: "Benchmarks behind docs/performance.md (build with -c release).",
        subcommands: [QueueBench.self, QueueBenchWorker.self, MergeBench.self, ModelsBench.self, PlateBench.self,
                      LargePlateBench.self, ReadingBench.self, ChaosBench.self, FacilityBench.self, FacilityWorker.self])
}
