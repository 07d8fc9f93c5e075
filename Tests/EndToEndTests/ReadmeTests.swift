import Foundation
import PlateFixtures
import Testing

/// The README's command reference is what `plateseg --help` says: every subcommand is listed,
/// and every option the README gives a command exists on it.
@Suite struct ReadmeTests {
    static func referenceLines() throws -> [String] {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## The command line"), "README has no command reference")
        let block = readme[section.upperBound...].split(separator: "```")[1]
        return block.split(separator: "\n").map(String.init).filter { $0.hasPrefix("plateseg ") }
    }

    @Test func everySubcommandIsInTheReference() throws {
        let help = try run(products.appendingPathComponent("plateseg"), ["--help"])
        let listed = help.components(separatedBy: "SUBCOMMANDS:")[1].split(separator: "\n")
            .compactMap { line in line.firstMatch(of: /^  ([a-z][a-z-]*)(\s|$)/).map { String($0.output.1) } }
        let documented = Set(try Self.referenceLines().map { $0.split(separator: " ")[1] }.map(String.init))
        #expect(listed.count >= 12)
        for command in listed { #expect(documented.contains(command), "README lacks `plateseg \(command)`") }
    }

    @Test func everyOptionInTheReferenceExists() throws {
        for line in try Self.referenceLines() {
            let words = line.split(separator: " ").map(String.init)
            let help = try run(products.appendingPathComponent("plateseg"), [words[1], "--help"])
            // Options as the README writes them, before any comment.
            let code = line.components(separatedBy: "  #")[0]
            let options = code.matches(of: /--[a-z][a-z-]*/).map { String($0.output) }
            for option in options where option != "--help" {
                #expect(help.contains(option), "README gives `plateseg \(words[1]) \(option)`, which --help does not list")
            }
        }
    }
}

/// The README's quick start, run as written: every line of its first block after "## Your own
/// plate", in one shell, from a folder that holds the demo plate and networks as the
/// repository's folder does (the small parity networks, so that it runs in a debug build).
@Suite struct QuickStartTests {
    static func quickStart() throws -> String {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## Your own plate"), "README has no quick start")
        let block = try #require(readme[section.upperBound...].components(separatedBy: "```sh\n").dropFirst().first)
        return block.components(separatedBy: "```")[0]
    }

    @Test func theQuickStartRunsAsWrittenOnTheDemoPlate() throws {
        let script = try Self.quickStart()
        #expect(script.split(separator: "\n").count >= 5 && script.split(separator: "\n").allSatisfy { $0.hasPrefix("plateseg ") })
        let folder = temporaryFolder("plateseg-quickstart")
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("demo"), withDestinationURL: demo)
        let models = folder.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        for name in ["yolox", "maskrcnn", "upernet"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(name).safetensors"),
                                             to: models.appendingPathComponent("\(name).safetensors"))
        }
        try FileManager.default.copyItem(at: intensityReference, to: models.appendingPathComponent("intensity.json"))

        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/bash")
        shell.arguments = ["-euo", "pipefail", "-c", script]
        shell.currentDirectoryURL = folder
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = products.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["PLATESEG_DB"] = nil
        shell.environment = environment
        let pipe = Pipe()
        shell.standardOutput = pipe
        shell.standardError = pipe
        try shell.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        shell.waitUntilExit()
        #expect(shell.terminationStatus == 0, "\(output)")

        #expect(output.contains("plate plate: 12 new images (0 unreadable)"), "\(output)")
        #expect(output.contains("ensemble"), "eval's table")
        let cells = try String(contentsOf: folder.appendingPathComponent("cells.csv"), encoding: .utf8)
        #expect(cells.hasPrefix("plate,well,field,"))
        let report = try String(contentsOf: folder.appendingPathComponent("plate-report/index.html"), encoding: .utf8)
        #expect(report.contains("<h2>Plate plate</h2>"))
    }
}
