import Foundation
import Imaging
import JobStore

/// Finds a plate's images and reads each one once: its size, a content hash for provenance,
/// and whether it decodes at all — a damaged file is recorded now, not discovered at 3 a.m.
/// Each image's identity (well, field, time point, channel) comes from its name or the manifest.
public struct PlateScanner: Sendable {
    public var manifest: Manifest?
    /// The channel to segment when fields have several (`w1`, `ch1`, `Phase`; any case).
    public var channel: String?
    /// The time point of images whose names and manifest row give none: a plate scanned again
    /// later is submitted as its next time point.
    public var timepoint: TimePoint?
    /// The plate's images as stored by an earlier submission, by path: a file whose identity
    /// (device, inode, size, modification time) is the one recorded then is not read again.
    public var known: [String: StoredImage]

    public init(manifest: Manifest? = nil, channel: String? = nil, timepoint: TimePoint? = nil, known: [String: StoredImage] = [:]) {
        self.manifest = manifest
        self.channel = channel
        self.timepoint = timepoint
        self.known = known
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
        for case let url as URL in walker
        where ImageFile.isImageName(url.lastPathComponent) && !ImageIdentity.isThumbnail(fileName: url.lastPathComponent) {
            let full = url.standardizedFileURL.path
            relativePaths.append(String(full.dropFirst(listed.path.count + 1)))
        }
        relativePaths.sort()
        let identities = relativePaths.map(identity)
        let segmented = try segmentedChannel(identities.compactMap { $0.identity?.channel }, folder: folder)
        var images = zip(relativePaths, identities).map { relativePath, found in
            image(relativePath: relativePath, root: root.path, identity: found.identity, rowError: found.rowError,
                  page: manifest?.pages[relativePath],
                  segmented: found.identity?.channel.map { $0.lowercased() == segmented?.lowercased() } ?? true)
        }
        // Manifest rows naming files that are not there are reported as images that cannot be read.
        if let manifest {
            let found = Set(relativePaths)
            for file in manifest.identities.keys.sorted() where !found.contains(file) {
                let p = manifest.identities[file]!
                images.append(NewImage(path: root.appendingPathComponent(file).path, well: p.well, field: p.field,
                                       timepoint: p.timepoint, channel: p.channel, width: 0, height: 0, contentHash: "",
                                       error: "\(file): listed in the manifest but not in the plate folder; add the file or remove the row"))
            }
            for file in manifest.rowErrors.keys.sorted() where !found.contains(file) {
                images.append(NewImage(path: root.appendingPathComponent(file).path, well: nil, field: nil, width: 0, height: 0,
                                       contentHash: "", error: manifest.rowErrors[file]!))
            }
        }
        return images
    }

    private func identity(relativePath: String) -> (identity: ImageIdentity?, rowError: String?) {
        var identity = ImageIdentity.parse(relativePath: relativePath)
        var rowError: String?
        if let manifest {
            if let row = manifest.identities[relativePath] {
                // The manifest's row wins; what it leaves empty the name may still tell.
                identity = ImageIdentity(well: row.well, field: row.field ?? identity?.field,
                                         timepoint: row.timepoint ?? identity?.timepoint,
                                         channel: row.channel ?? identity?.channel, plane: identity?.plane)
            } else if let e = manifest.rowErrors[relativePath] {
                rowError = e
            } else if identity == nil {
                rowError = "\(relativePath): not in the manifest, and its name gives no well; add a row for it or move it out of the plate folder"
            }
        }
        if identity != nil, identity?.timepoint == nil { identity?.timepoint = timepoint }
        return (identity, rowError)
    }

    /// The channel whose images are segmented: the one asked for, or the only one there is. A
    /// plate of several channels with none chosen is refused: segmenting a fluorescence channel
    /// as if it were phase contrast would give wrong cells, not an error.
    private func segmentedChannel(_ channels: [String], folder: String) throws -> String? {
        let present = Set(channels).sorted()
        if let channel {
            guard present.isEmpty || present.contains(where: { $0.lowercased() == channel.lowercased() }) else {
                throw CoordinatorError.plateFolder(path: folder, reason: "no images of channel \(channel); its images are of \(present.joined(separator: ", ")): choose one of them with --channel")
            }
            return channel
        }
        guard present.count <= 1 else {
            throw CoordinatorError.plateFolder(path: folder, reason: "its fields have several channels (\(present.joined(separator: ", "))): choose the phase-contrast or brightfield one with --channel (e.g. --channel \(present[0]))")
        }
        return present.first
    }

    private func image(relativePath: String, root: String, identity found: ImageIdentity?, rowError: String?, page: Int?,
                       segmented: Bool) -> NewImage {
        let path = root + "/" + relativePath
        var error = rowError
        var width = 0, height = 0, hash = ""
        let identity = (try? FileIdentity(path))?.description
        // Images of other channels are listed, not read: they are not segmented.
        if segmented, rowError == nil, let identity, let stored = known[path], stored.fileIdentity == identity, stored.error == nil,
           stored.segmented, stored.page == page {
            width = stored.width
            height = stored.height
            hash = stored.contentHash
        } else if segmented {
            do {
                let data = try ImageFile.contents(of: path)
                hash = ContentHash.of(data)
                // Decoded whole, not only the header: a truncated field is found now, not at 3 a.m.
                let image = try ImageFile.decode(data, name: path, page: page ?? 0)
                width = image.width
                height = image.height
            } catch let e as ImagingError {
                error = error ?? e.description
            } catch let e {
                error = error ?? "\(path): cannot read the file (\(e.localizedDescription))"
            }
        }
        return NewImage(path: path, well: found?.well, field: found?.field, timepoint: found?.timepoint,
                        channel: found?.channel, plane: found?.plane, page: page, width: width, height: height,
                        contentHash: hash, error: error, segmented: segmented, fileIdentity: error == nil && segmented ? identity : nil)
    }
}
