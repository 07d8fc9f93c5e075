import ArgumentParser

@main
struct Plateseg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plateseg",
        abstract: "Segment every cell of every image of a microscope plate, and ask where they are.",
        subcommands: [Submit.self, Run.self, WorkerCommand.self, Status.self, Retry.self, Query.self, Export.self, Eval.self, Calibrate.self, Report.self, Trace.self])
}

/// Options every command that reads or writes the job database takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The job database (SQLite file; created if missing).")
    var db: String = "plateseg.sqlite"
}
