import Foundation

/// A file or folder a command writes under a name the user gave: built under a hidden name beside
/// it and renamed into place once complete, so that a failure (a full disk, a kill) never leaves a
/// half file under that name. A folder that was there is replaced whole.
public struct StagedOutput: Sendable {
    public let final: URL
    /// Where to write meanwhile.
    public let staging: URL

    /// Refuses a target whose folder does not exist, or (for a folder) a file in its place.
    public init(_ path: String, folder: Bool) throws {
        final = URL(fileURLWithPath: path).standardizedFileURL
        let parent = final.deletingLastPathComponent()
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw StagedOutputError("\(path): its folder \(parent.path) does not exist; create it or choose another path")
        }
        if FileManager.default.fileExists(atPath: final.path, isDirectory: &isFolder), isFolder.boolValue != folder {
            throw StagedOutputError("\(path): a \(isFolder.boolValue ? "folder" : "file") is in the way; remove it or choose another path")
        }
        staging = parent.appendingPathComponent(".\(final.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: staging)
        if folder {
            do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: false) } catch {
                throw StagedOutputError("\(path): cannot write in \(parent.path) (\(error.localizedDescription))")
            }
        } else if !FileManager.default.createFile(atPath: staging.path, contents: nil) {
            throw StagedOutputError("\(path): cannot write in \(parent.path) (\(String(cString: strerror(errno))))")
        }
    }

    /// Moves the finished output into place.
    public func commit() throws {
        if rename(staging.path, final.path) == 0 { return }
        // A folder that is there already: moved aside, replaced, then removed.
        guard errno == ENOTEMPTY || errno == EEXIST else {
            let reason = String(cString: strerror(errno))
            discard()
            throw StagedOutputError("\(final.path): cannot move the finished output into place (\(reason))")
        }
        let old = final.deletingLastPathComponent().appendingPathComponent(".\(final.lastPathComponent).old-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: old)
        guard rename(final.path, old.path) == 0, rename(staging.path, final.path) == 0 else {
            let reason = String(cString: strerror(errno))
            discard()
            throw StagedOutputError("\(final.path): cannot replace it (\(reason))")
        }
        try? FileManager.default.removeItem(at: old)
    }

    /// Removes what was written: the command failed.
    public func discard() {
        try? FileManager.default.removeItem(at: staging)
    }
}

public struct StagedOutputError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
