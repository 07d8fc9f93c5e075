import Foundation

/// Where a plate's images are on this host. Workers on many hosts read the paths the plate was
/// submitted with; a host that mounts the shared filesystem elsewhere maps the prefix
/// (`--path-map /mnt/plates=/data/plates`). The longest matching prefix wins.
public struct PathMap: Sendable, Equatable {
    public private(set) var rules: [(from: String, to: String)] = []

    public init() {}

    /// Rules as `FROM=TO`; a malformed rule names itself.
    public init(parsing rules: [String]) throws {
        for rule in rules {
            let parts = rule.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].hasPrefix("/"), parts[1].hasPrefix("/") else {
                throw PermanentJobError("--path-map \(rule): expected FROM=TO, two absolute folders (the submitted prefix and this host's)")
            }
            self.rules.append((Self.folder(parts[0]), Self.folder(parts[1])))
        }
        self.rules.sort { $0.from.count > $1.from.count }
    }

    private static func folder(_ path: String) -> String {
        path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
    }

    public func local(_ path: String) -> String {
        for rule in rules where path == rule.from || path.hasPrefix(rule.from + "/") {
            return rule.to + path.dropFirst(rule.from.count)
        }
        return path
    }

    public static func == (a: PathMap, b: PathMap) -> Bool {
        a.rules.map { "\($0.from)=\($0.to)" } == b.rules.map { "\($0.from)=\($0.to)" }
    }
}
