import Foundation
import Imaging
import Testing
@testable import Pipeline

@Suite struct FieldCacheTests {
    static func file(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-field-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func key(_ path: String, page: Int = 0, intensity: IntensityRule = .none) throws -> FieldCache.Key {
        FieldCache.Key(path: path, file: try FileIdentity(path), contentHash: "h", page: page, intensity: intensity, scale: nil)
    }

    /// The next job on the same field takes the kept image; another page, another rule or a
    /// rewritten file is prepared again.
    @Test func theSameFieldIsPreparedOnce() throws {
        let path = try Self.file([1, 2, 3])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cache = FieldCache()
        var prepared = 0
        func image(_ key: FieldCache.Key) throws -> GrayImage {
            try cache.image(for: key) {
                prepared += 1
                return GrayImage(width: 1, height: 1, pixels: [UInt8(prepared)])
            }
        }
        #expect(try image(Self.key(path)).pixels == [1])
        #expect(try image(Self.key(path)).pixels == [1])
        #expect(prepared == 1)
        #expect(try image(Self.key(path, page: 1)).pixels == [2])
        #expect(try image(Self.key(path, page: 1, intensity: .fixed(low: 0, high: 100))).pixels == [3])
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: path))
        #expect(try image(Self.key(path, page: 1, intensity: .fixed(low: 0, high: 100))).pixels == [4])
        #expect(prepared == 4)
    }

    /// A field that failed to prepare is not kept: the next job tries again.
    @Test func aFailureIsNotKept() throws {
        let path = try Self.file([1])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cache = FieldCache()
        struct Unreadable: Error {}
        #expect(throws: Unreadable.self) { try cache.image(for: Self.key(path)) { throw Unreadable() } }
        #expect(try cache.image(for: Self.key(path)) { GrayImage(width: 1, height: 1, pixels: [7]) }.pixels == [7])
    }

    @Test func aMissingFileSaysWhy() {
        #expect { try FileIdentity("/nonexistent/plateseg/field.tif") } throws: { "\($0)" == "No such file or directory" }
    }
}
