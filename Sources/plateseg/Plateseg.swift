import ArgumentParser
import Foundation
import JobStore
import Pipeline

@main
struct Plateseg: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plateseg",
        abstract: "Segment every cell of every image of a microscope plate, and ask where they are.",
        subcommands: [Submit.self, Run.self, WorkerCommand.self, Status.self, Retry.self, Prune.self, Query.self, Export.self, Eval.self, Calibrate.self, CalibrateInt8.self, Report.self, Trace.self, FitIntensity.self])
}

/// A module's complaint about an option's value is a usage error (exit 64), as ArgumentParser's own.
func asUsageError<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ModelsFolderError { throw ValidationError(e.description) } catch let e as FilterError { throw ValidationError(e.description) }
}

/// Options every command that reads or writes the job database takes.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The job database: a SQLite file on this machine (created if missing), or postgres://user@host:port/database for many machines (password from PGPASSWORD or ~/.pgpass). Default: $PLATESEG_DB, else plateseg.sqlite.",
        valueName: "path-or-url"))
    var db: String = ProcessInfo.processInfo.environment["PLATESEG_DB"] ?? "plateseg.sqlite"

    func open(mustExist: Bool = false) throws -> any JobStore {
        try openJobStore(db, settings: StoreSettings(mustExist: mustExist))
    }

    /// For commands that only read: nothing is created, migrated or written, and a user who may
    /// only read the database can run them.
    func openForReading() throws -> any JobStore {
        try openJobStore(db, settings: StoreSettings(readOnly: true))
    }
}
