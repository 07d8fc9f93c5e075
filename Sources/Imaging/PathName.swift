import SystemPackage

/// File names taken apart through swift-system's `FilePath`, not Foundation's `NSString` path
/// methods, which trap on "//" before a letter beyond ASCII (found by fuzzing image names). A
/// text holding a NUL is no path (`FilePath` would end it there): it is left whole.
public enum PathName {
    /// `b/x.png` → `x.png`.
    public static func file(_ path: String) -> String {
        isPath(path) ? FilePath(path).lastComponent?.string ?? path : path
    }

    /// `b/x.png` → `x`; `b/.hidden` → `.hidden`.
    public static func stem(_ path: String) -> String {
        isPath(path) ? FilePath(path).stem ?? path : path
    }

    /// `b/x.png` → `b/x`; `b/.hidden` and `b.d/x` as they are. Repeated slashes become one.
    public static func withoutExtension(_ path: String) -> String {
        guard isPath(path) else { return path }
        var file = FilePath(path)
        file.extension = nil
        return file.string
    }

    /// `b/x.png` → `png`; `b/.hidden` and `b/x` → "".
    public static func fileExtension(_ path: String) -> String {
        isPath(path) ? FilePath(path).extension ?? "" : ""
    }

    /// `a//b/` → `a/b`.
    public static func normalized(_ path: String) -> String {
        isPath(path) ? FilePath(path).string : path
    }

    /// `folder` and a name in it.
    public static func joined(_ folder: String, _ name: String) -> String {
        isPath(folder) && isPath(name) ? FilePath(folder).appending(name).string : "\(folder)/\(name)"
    }

    private static func isPath(_ text: String) -> Bool { !text.utf8.contains(0) }
}
