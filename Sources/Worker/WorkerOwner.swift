import Foundation

/// How a worker names itself in the leases it holds: `host:pid:slot`. Inside a process
/// namespace of its own (a container), the host part says which (`host+pidns<inode>`): a pid
/// means a process only within its namespace, and a coordinator gives back the leases of
/// processes it finds gone only where the owner's host part is its own.
public enum WorkerOwner {
    public static let host: String = {
        let name = ProcessInfo.processInfo.hostName
        // The kernel's initial process namespace has this fixed inode (PROC_PID_INIT_INO).
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid"),
              link != "pid:[4026531836]" else { return name }
        return name + "+pidns" + link.filter(\.isNumber)
    }()

    /// The lease owner of slot `slot` of this process.
    public static func name(slot: Int) -> String { "\(host):\(getpid()):\(slot)" }
}
