import Foundation
import JobStore
import SystemPackage

/// How a user names an image: by its path relative to the plate folder (as `query --cells`,
/// `export` and the report write it), with or without its extension, or by its bare file name
/// when only one image of the plates in question has it. Two `x.png` in two subfolders are two
/// names, never one.
public struct ImageNames: Sendable {
    private var byName: [String: [StoredImage]] = [:]
    private var byFileName: [String: [StoredImage]] = [:]
    private let roots: [String: String]

    public init(_ images: [StoredImage], plates: [PlateInfo]) {
        roots = Dictionary(plates.map { ($0.name, $0.root) }, uniquingKeysWith: { a, _ in a })
        for image in images {
            let relative = relativePath(image.path, root: roots[image.plate] ?? "")
            for name in Set([image.path, relative, Self.withoutExtension(relative)]) {
                byName[name, default: []].append(image)
            }
            let file = Self.fileName(relative)
            for name in Set([file, Self.withoutExtension(file)]) {
                byFileName[name, default: []].append(image)
            }
        }
    }

    /// The image's path relative to its plate's folder.
    public func name(of image: StoredImage) -> String { relativePath(image.path, root: roots[image.plate] ?? "") }

    /// The images `name` names: by path first, else by bare file name.
    public func images(named name: String) -> [StoredImage] {
        byName[name] ?? byName[FilePath(name).string] ?? byFileName[name] ?? []
    }

    /// The one image `name` names; a bare name two images share is refused naming both.
    public func image(named name: String) throws -> StoredImage? {
        let found = images(named: name)
        guard found.count <= 1 else {
            throw ImageNameError("\(name) names \(found.count) images (\(found.prefix(4).map { "\($0.plate): \(self.name(of: $0))" }.joined(separator: ", "))); give the path in the plate folder, e.g. \(self.name(of: found[0]))")
        }
        return found.first
    }
}

extension ImageNames {
    // FilePath, not NSString's path methods: swift-corelibs-foundation traps on a path where "//"
    // comes before a letter beyond ASCII ("a//é.png"), as a manifest may write one (found by fuzzing).

    /// The last part of a path: `b/x.png` → `x.png`.
    public static func fileName(_ path: String) -> String { FilePath(path).lastComponent?.string ?? path }

    /// The path without its file name's extension: `b/x.png` → `b/x`; `b/.hidden` and `b/x` as they are.
    public static func withoutExtension(_ path: String) -> String {
        var file = FilePath(path)
        file.extension = nil
        return file.string
    }
}

public struct ImageNameError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
