import ArgumentParser
import Foundation
import Imaging
import Models

/// `plateseg-bench models`: each network on one 704x520 demo tile, in the Swift engine and, side by
/// side, the same weights exported to ONNX and run by ONNX Runtime (Python, same thread count), in
/// float32 and in ONNX Runtime's own static int8 quantisation. training/parity/bench_onnx.py
/// exports and times the ONNX Runtime side (and writes random weights where --dir has none).
struct ModelsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Latency, GFLOP/s and peak memory of YOLOX, UPerNet and Mask R-CNN vs ONNX Runtime.")

    @Option(help: "Folder of <arch>.safetensors (and <arch>.int8.json): `models` for the shipped networks; networks of the shipped size with random weights are written where missing.")
    var dir = "/tmp/plateseg-bench"

    @Option(help: "Where the calibration images that <arch>.int8.json names are, for ONNX Runtime's int8.")
    var calibrationImages = "../shared/data/sartorius/images/train"

    @Option(help: "Timed runs per network (after one warm-up); the median is reported.")
    var runs = 5

    @Option(help: "Tile to run on.")
    var image = "demo/plate/0f08d640930b.png"

    @Option(help: "Python interpreter with torch and onnxruntime.")
    var python = "python3"

    @Flag(help: "Skip ONNX Runtime (the weights must already be in --dir; no Python needed).")
    var skipOnnx = false

    @Option(parsing: .upToNextOption, help: "Networks to time (yolox, upernet, maskrcnn); all by default.")
    var networks: [String] = ["yolox", "upernet", "maskrcnn"]

    @Option(parsing: .upToNextOption, help: "Precisions to time each network in (fp32, bf16, int8); those this processor runs natively by default (int8 where --dir has the network's int8.json).")
    var precisions: [String] = Precision.allCases.filter(\.isNative).map(\.rawValue)

    /// oneDNN (OpenMP) uses OMP_NUM_THREADS or every core; ONNX Runtime is given the same count.
    private var threads: Int {
        ProcessInfo.processInfo.environment["OMP_NUM_THREADS"].flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount
    }

    mutating func run() async throws {
        try benchmark()
    }

    func benchmark() throws {
        let archs = networks
        guard archs.allSatisfy(["yolox", "upernet", "maskrcnn"].contains) else {
            throw ValidationError("--networks takes yolox, upernet and maskrcnn")
        }
        let kinds = try precisions.map { name in
            guard let p = Precision(rawValue: name) else { throw ValidationError("--precisions takes \(Precision.allCases.map(\.rawValue).joined(separator: ", "))") }
            return p
        }
        var onnx: [String: OnnxTimes] = [:]
        if !skipOnnx {
            onnx = try onnxRuntime(int8: kinds.contains(.int8))
        }
        let tile = try PNGCodec.readGray(image)
        print("plateseg-bench models: \(tile.width)x\(tile.height) tile \(image), \(threads) threads"
              + "\(passiveWait ? " (passive wait)" : ""), median of \(runs) runs; oneDNN uses \(Precision.instructionSet)")
        print("ONNX Runtime: float32, and int8 = its static quantisation (QDQ, u8 activations, s8 per-channel weights) calibrated on the images of <arch>.int8.json;"
              + " speed-up = ONNX Runtime's time in the row's precision (fp32 for bf16) over the engine's")
        print("network   | precision | Swift/oneDNN ms | GFLOP  | GFLOP/s | peak RSS MiB | ORT fp32 ms | ORT int8 ms | speed-up")
        print("----------|-----------|-----------------|--------|---------|--------------|-------------|-------------|---------")
        for arch in archs {
            for precision in kinds {
                let path = "\(dir)/\(arch).safetensors"
                let ranges = ActivationRanges.path(besideModel: path)
                if precision == .int8 && !FileManager.default.fileExists(atPath: ranges) {
                    print("\(arch.padding(toLength: 9, withPad: " ", startingAt: 0)) | int8      | no \(ranges) (plateseg calibrate-int8)")
                    continue
                }
                Profiling.releaseCachedBuffers()
                let model = try ModelLoader.load(path: path, precision: precision)
                let (first, flops) = try Profiling.countingFlops { try model.run(tile) }
                resetPeakMemory()
                var times: [Double] = []
                for _ in 0..<runs {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try model.run(tile)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
                let ms = median(times)
                let ort = onnx[arch]
                let reference = precision == .int8 ? ort?.int8 : ort?.fp32
                let speedup = reference.map { String(format: "%7.2fx", $0 / ms) } ?? "       -"
                let column = { (v: Double?) in v.map { String(format: "%11.1f", $0) } ?? String(repeating: " ", count: 10) + "-" }
                let note = arch == "maskrcnn" ? " (\(first.detections.count) detections)" : ""
                print(String(format: "%@ | %@ | %15.1f | %6.1f | %7.1f | %12.0f | %@ | %@ | %@%@", arch.padding(toLength: 9, withPad: " ", startingAt: 0) as NSString,
                             precision.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0) as NSString, ms, flops / 1e9,
                             flops / 1e9 / (ms / 1000), peakMemoryMiB(), column(ort?.fp32) as NSString, column(ort?.int8) as NSString,
                             speedup as NSString, note as NSString))
            }
        }
    }

    /// Under OMP_WAIT_POLICY=PASSIVE oneDNN's idle threads sleep; ONNX Runtime is told the same.
    private var passiveWait: Bool {
        ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"]?.uppercased() == "PASSIVE"
    }

    /// ONNX Runtime's median milliseconds for one network.
    struct OnnxTimes {
        var fp32: Double?
        var int8: Double?
    }

    private func onnxRuntime(int8: Bool) throws -> [String: OnnxTimes] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "training/parity/bench_onnx.py", "--dir", dir, "--threads", String(threads), "--runs", String(runs),
                       "--calibration-images", calibrationImages, "--only"] + networks
            + (passiveWait ? ["--no-spin"] : []) + (int8 ? ["--int8"] : [])
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0,
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: [String: Any]]
        else {
            throw ValidationError("training/parity/bench_onnx.py failed (exit \(p.terminationStatus)); run it by hand to see why, or pass --skip-onnx")
        }
        return json.mapValues { OnnxTimes(fp32: $0["median_ms"] as? Double, int8: $0["int8_median_ms"] as? Double) }
    }

    private func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    private func resetPeakMemory() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    private func peakMemoryMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return .nan }
        return kb / 1024
    }
}
