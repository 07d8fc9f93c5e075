import Foundation

// plateseg-fuzz TARGET [libFuzzer options] [CORPUS...]
//   built with `make fuzz` (libFuzzer and AddressSanitizer linked in): fuzzes TARGET.
//   built normally: runs every file of the CORPUS folders through TARGET once (a regression run).
// plateseg-fuzz seeds FOLDER: writes the seed corpus, made from the repository's real files.

typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
typealias RunDriver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                                      Callback) -> Int32

nonisolated(unsafe) var selected: (@Sendable (Data) -> Void)?

let arguments = CommandLine.arguments
if arguments.count == 3, arguments[1] == "seeds" {
    do { try Seeds.write(to: URL(fileURLWithPath: arguments[2])) } catch {
        FileHandle.standardError.write(Data("plateseg-fuzz: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
guard arguments.count >= 2, let target = FuzzTargets.all[arguments[1]] else {
    let names = FuzzTargets.all.keys.sorted().joined(separator: ", ")
    FileHandle.standardError.write(Data("usage: plateseg-fuzz TARGET [libFuzzer options] [CORPUS...] | seeds FOLDER\ntargets: \(names)\n".utf8))
    exit(2)
}
selected = target

if let symbol = dlsym(nil, "LLVMFuzzerRunDriver") {
    // libFuzzer sees the command line without the target's name.
    var argv: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
    var argc = Int32(argv.count - 1)
    let status = argv.withUnsafeMutableBufferPointer { buffer -> Int32 in
        var base = buffer.baseAddress
        return unsafeBitCast(symbol, to: RunDriver.self)(&argc, &base) { bytes, count in
            selected?(bytes.map { Data(bytes: $0, count: count) } ?? Data())
            return 0
        }
    }
    exit(status)
}

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
