import Foundation
import JobStore
import Imaging

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
            for name in Set([image.path, relative, PathName.withoutExtension(relative)]) {
                byName[name, default: []].append(image)
            }
            let file = PathName.file(relative)
            for name in Set([file, PathName.withoutExtension(file)]) {
                byFileName[name, default: []].append(image)
            }
        }
    }

    /// The image's path relative to its plate's folder.
    public func name(of image: StoredImage) -> String { relativePath(image.path, root: roots[image.plate] ?? "") }

    /// The images `name` names: by path first, else by bare file name.
    public func images(named name: String) -> [StoredImage] {
        byName[name] ?? byName[PathName.normalized(name)] ?? byFileName[name] ?? []
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

public struct ImageNameError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
