import Foundation

/// What tells one version of a file from another without reading it: device, inode, size and
/// modification time to the nanosecond.
public struct FileIdentity: Equatable, Sendable, CustomStringConvertible {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int64
    public let modified: Int64
    public let modifiedNanoseconds: Int64

    /// Throws the system's reason (e.g. "No such file or directory") when `path` cannot be seen.
    public init(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemReason(code: errno) }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(info.st_mtim.tv_nsec)
    }

    /// As stored with an image: `device:inode:size:seconds.nanoseconds`.
    public var description: String { "\(device):\(inode):\(size):\(modified).\(modifiedNanoseconds)" }
}

/// The system's reason for a failed call, as `strerror` words it.
public struct SystemReason: Error, CustomStringConvertible {
    public let code: Int32
    public init(code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
}
