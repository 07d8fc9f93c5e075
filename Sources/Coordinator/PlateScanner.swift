import Foundation
import Imaging
import JobStore

/// Finds a plate's images and reads each one once: its size, a content hash for provenance,
/// and whether it decodes at all — a damaged file is recorded now, not discovered at 3 a.m.
public struct PlateScanner: Sendable {
    public var manifest: Manifest?

    public init(manifest: Manifest? = nil) {
        self.manifest = manifest
    }

    public func scan(folder: String) throws -> [NewImage] {
        let root = URL(fileURLWithPath: folder).standardizedFileURL
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw CoordinatorError.plateFolder(path: folder, reason: "no such folder")
        }
        // The enumerator does not descend into a folder given as a symbolic link (it would list
        // nothing), so it walks the folder the link points to; paths stay relative to the plate.
        let listed = root.resolvingSymlinksInPath()
        guard let walker = FileManager.default.enumerator(at: listed, includingPropertiesForKeys: [.isRegularFileKey],
                                                          options: [.skipsHiddenFiles]) else {
            throw CoordinatorError.plateFolder(path: folder, reason: "cannot list it")
        }
        var relativePaths: [String] = []
        for case let url as URL in walker where url.pathExtension.lowercased() == "png" {
            let full = url.standardizedFileURL.path
            relativePaths.append(String(full.dropFirst(listed.path.count + 1)))
        }
        var images = relativePaths.sorted().map { image(relativePath: $0, root: root.path) }
        // Manifest rows naming files that are not there are reported as images that cannot be read.
        if let manifest {
            let found = Set(relativePaths)
            for file in manifest.positions.keys.sorted() where !found.contains(file) {
                let p = manifest.positions[file]!
                images.append(NewImage(path: root.appendingPathComponent(file).path, well: p.well, field: p.field,
                                       width: 0, height: 0, contentHash: "",
                                       error: "\(file): listed in the manifest but not in the plate folder; add the file or remove the row"))
            }
        }
        return images
    }

    private func image(relativePath: String, root: String) -> NewImage {
        let path = root + "/" + relativePath
        let name = (relativePath as NSString).lastPathComponent
        var position = PlatePosition.parse(fileName: name)
        var error: String?
        if let manifest {
            if let p = manifest.positions[relativePath] {
                position = p
            } else if let rowError = manifest.rowErrors[relativePath] {
                error = rowError
            }
        }
        var width = 0, height = 0, hash = ""
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            hash = ContentHash.of(data)
            let gray = try PNGCodec.decodeGray(data, name: path)
            width = gray.width
            height = gray.height
        } catch let e as ImagingError {
            error = error ?? e.description
        } catch let e {
            error = error ?? "\(path): cannot read the file (\(e.localizedDescription))"
        }
        return NewImage(path: path, well: position?.well, field: position?.field, width: width, height: height,
                        contentHash: hash, error: error)
    }
}
