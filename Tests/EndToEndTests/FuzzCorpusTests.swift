import Foundation
import Testing

/// Every input of the fuzzers' seed corpus, and every input a fuzzer once crashed on (fixed
/// since), runs through its parser without a crash: the regression half of `make fuzz`.
@Suite struct FuzzCorpusTests {
    static let targets = ["png", "tiff", "safetensors", "artifact", "artifact-payload", "kaggle-rle", "coco-rle", "manifest", "truth-csv",
                          "truth-coco", "truth-names", "ensemble-json", "int8-ranges", "names"]

    @Test(arguments: targets)
    func theCorpusRunsThroughItsParser(target: String) throws {
        let fuzz = repositoryRoot.appendingPathComponent("Fuzz")
        var folders = [fuzz.appendingPathComponent("corpus/\(target)").path]
        let regressions = fuzz.appendingPathComponent("regressions/\(target)").path
        if FileManager.default.fileExists(atPath: regressions) { folders.append(regressions) }
        let seeds = try FileManager.default.contentsOfDirectory(atPath: folders[0]).count
        #expect(seeds > 0, "a seed corpus for \(target)")
        let out = try run(products.appendingPathComponent("plateseg-fuzz"), [target] + folders)
        #expect(out.contains("\(target): ") && out.contains("inputs run, none crashed"), "\(out)")
    }

    @Test func everyTargetHasItsCorpusAndNoOther() throws {
        let corpus = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("Fuzz/corpus").path)
        #expect(Set(corpus) == Set(Self.targets))
        let usage = try run(products.appendingPathComponent("plateseg-fuzz"), [], expectStatus: 2)
        #expect(usage.contains("targets: " + Self.targets.sorted().joined(separator: ", ")))
    }
}
