import Foundation
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
