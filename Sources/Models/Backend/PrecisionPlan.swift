import Foundation
import Imaging

/// What each network of a models folder computes in: one precision for all or `auto`, with
/// exceptions per network, written as `--precision` takes it: `auto`, `bf16`, `bf16,upernet=int8`.
public struct PrecisionPlan: Sendable, Equatable, CustomStringConvertible {
    public enum Choice: Sendable, Equatable {
        /// Per model file, the fastest this processor runs natively that keeps fp32's cells.
        case auto
        case fixed(Precision)
    }

    public var all: Choice
    public var byNetwork: [String: Precision]

    public init(_ all: Choice = .auto, byNetwork: [String: Precision] = [:]) {
        self.all = all
        self.byNetwork = byNetwork
    }

    /// nil for text that is not one choice followed by `network=precision` exceptions.
    public init?(_ text: String) {
        var all: Choice?
        var byNetwork: [String: Precision] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let pair = part.split(separator: "=", omittingEmptySubsequences: false).map(String.init)
            if pair.count == 2 {
                guard !pair[0].isEmpty, let p = Precision(rawValue: pair[1]), byNetwork[pair[0]] == nil else { return nil }
                byNetwork[pair[0]] = p
            } else if all == nil, part == "auto" {
                all = .auto
            } else if all == nil, let p = Precision(rawValue: part) {
                all = .fixed(p)
            } else {
                return nil
            }
        }
        self.init(all ?? .auto, byNetwork: byNetwork)
    }

    public var description: String {
        let head: String
        switch all {
        case .auto: head = "auto"
        case let .fixed(p): head = p.rawValue
        }
        return ([head] + byNetwork.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.rawValue)" }).joined(separator: ",")
    }

    /// The precision of the network in `file` (`<network>.safetensors`).
    public func precision(forModel file: String) -> Precision {
        let network = PathName.stem(file)
        if let p = byNetwork[network] { return p }
        switch all {
        case let .fixed(p): return p
        case .auto:
            // int8 only where a person validated this file's calibration against fp32: its
            // scores can hold while its counts drift (models/MODEL_CARD.md, "Precision").
            if Precision.int8.isNative, let ranges = try? ModelLoader.int8Ranges(of: file), ranges.validated { return .int8 }
            return Precision.fastest
        }
    }

    /// "bf16 (auto: …)" when every file computes in one precision, else the networks by
    /// precision: "maskrcnn int8, upernet int8, yolox bf16 (auto: …)".
    public func describe(modelFiles files: [String]) -> String {
        let chosen = files.map { (network: PathName.stem($0), precision: precision(forModel: $0)) }
            .sorted { $0.network < $1.network }
        let kinds = Set(chosen.map(\.precision))
        var text = kinds.count == 1 ? kinds.first!.rawValue : chosen.map { "\($0.network) \($0.precision.rawValue)" }.joined(separator: ", ")
        if kinds.isEmpty { text = "no model files" }
        if all == .auto {
            text += " (auto: the fastest that \(Precision.instructionSet) runs natively"
                + (Precision.int8.isNative ? ", int8 where its calibration is validated)" : ")")
        }
        let emulated = kinds.filter { !$0.isNative }.map(\.rawValue).sorted()
        if !emulated.isEmpty {
            text += " (emulated: \(Precision.instructionSet) has no \(emulated.joined(separator: "/")) instructions, it runs slower than fp32)"
        }
        return text
    }
}
