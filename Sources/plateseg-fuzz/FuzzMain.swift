import Foundation

// plateseg-fuzz TARGET [libFuzzer options] [CORPUS...]
//   built with `make fuzz` (libFuzzer and AddressSanitizer linked in, libFuzzer's `main`
//   runs, this file's is renamed away): fuzzes TARGET.
//   built normally: runs every file of the CORPUS folders through TARGET once (a regression run).
// plateseg-fuzz seeds FOLDER: writes the seed corpus, made from the repository's real files.

nonisolated(unsafe) var selected: (@Sendable (Data) -> Void)?

/// libFuzzer's own `main` calls this first: the target's name is taken off the command line
/// before libFuzzer reads its options from it.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>,
                             _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    guard argc.pointee >= 2, let args = argv.pointee, let name = args[1].map({ String(cString: $0) }),
          let target = FuzzTargets.all[name] else { FuzzMain.usage() }
    selected = target
    args[1] = args[0]
    argv.pointee = args + 1
    argc.pointee -= 1
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    selected?(bytes.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
}

@main
enum FuzzMain {
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count == 3, arguments[1] == "seeds" {
            do { try Seeds.write(to: URL(fileURLWithPath: arguments[2])) } catch {
                FileHandle.standardError.write(Data("plateseg-fuzz: \(error)\n".utf8))
                exit(1)
            }
            exit(0)
        }
        guard arguments.count >= 2, let target = FuzzTargets.all[arguments[1]] else { usage() }
        var inputs = 0
        for path in arguments.dropFirst(2) {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                FileHandle.standardError.write(Data("plateseg-fuzz: \(path): no such file or folder\n".utf8))
                exit(1)
            }
            let files = isFolder.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" } : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target(data)
                inputs += 1
            }
        }
        print("\(arguments[1]): \(inputs) inputs run, none crashed")
    }

    static func usage() -> Never {
        let names = FuzzTargets.all.keys.sorted().joined(separator: ", ")
        FileHandle.standardError.write(Data("usage: plateseg-fuzz TARGET [libFuzzer options] [CORPUS...] | seeds FOLDER\ntargets: \(names)\n".utf8))
        exit(2)
    }
}
