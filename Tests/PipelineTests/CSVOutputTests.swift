import CSV
import Foundation
@testable import Pipeline
import Testing

/// The rows written without CSV.swift are written as CSV.swift writes them.
@Suite struct CSVOutputTests {
    @Test func everyRowIsWhatCSVSwiftWrites() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ab,\"\r\n 7é.")
        let rows = (0..<500).map { _ in
            (0..<Int.random(in: 1...6, using: &generator)).map { _ in
                String((0..<Int.random(in: 0...5, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            }
        } + [["plate", "well"], ["Plate 7, day \"2\"", "B02"], [""]]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-csv-\(UUID().uuidString).csv")
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        let output = try CSVOutput(handle, name: file.path)
        for row in rows { try output.write(row) }
        try output.finish()
        try handle.close()

        let reference = OutputStream(toMemory: ())
        let writer = try CSVWriter(stream: reference)
        for row in rows { try writer.write(row: row) }
        reference.close()
        let expected = (reference.property(forKey: .dataWrittenToMemoryStreamKey) as! Data) + Data("\n".utf8)
        #expect(try Data(contentsOf: file) == expected)
        #expect(rows.contains { !$0.allSatisfy(CSVOutput.isPlain) } && rows.contains { $0.allSatisfy(CSVOutput.isPlain) })
    }
}

@Suite struct FixedDecimalTests {
    @Test func numbersAreWrittenAsPrintfWritesThem() {
        for x in [0.0, 0.5, 0.123456, 0.99999, 1.5, 12.345678, 703.999, -0.004, -2.5, 0.8] {
            for d in [2, 4] { #expect(CellExport.fixed(x, d) == String(format: "%.\(d)f", x), "\(x) to \(d)") }
        }
    }
}
