import CDNNL

/// The number format the convolutions and matrix products of a network run in. Activations stay
/// in it between layers; what reads them as numbers (RoIAlign, softmax, the heads' decoding)
/// gets float32.
public enum Precision: String, Sendable, CaseIterable, Codable {
    case fp32
    /// bfloat16: float32's range with 8 bits of mantissa; accumulation stays float32.
    case bf16
    /// Convolutions on 8-bit integers (u8 or s8 inputs at each layer's calibrated scale, s8
    /// weights with a scale per output channel, s32 accumulation); activations between layers
    /// in 8 bits where the calibration has the output's range and every reader takes int8
    /// (`Conv2D`'s `outputRange`), else in bf16 where the processor has it, else float32.
    case int8

    /// Whether this processor has the instructions to run it at speed (oneDNN's ISA query).
    /// oneDNN would emulate bf16 on older AVX-512 processors, slower than float32.
    public var isNative: Bool {
        switch self {
        case .fp32: return true
        case .bf16: return Self.isa.contains(dnnl_cpu_isa_avx512_core_bf16)
        case .int8: return Self.isa.contains(dnnl_cpu_isa_avx512_core_vnni) || Self.isa.contains(dnnl_cpu_isa_avx2_vnni)
        }
    }

    /// What activations are kept in between layers that do not hand each other int8.
    var activations: Precision {
        switch self {
        case .fp32, .bf16: return self
        case .int8: return Precision.bf16.isNative ? .bf16 : .fp32
        }
    }

    /// The fastest precision this processor runs natively whose validation scores are those of
    /// fp32 (`models/MODEL_CARD.md`).
    public static var fastest: Precision { Precision.bf16.isNative ? .bf16 : .fp32 }

    /// oneDNN's name for the instruction set it uses here, e.g. "avx512_core_amx".
    public static var instructionSet: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        case let other: return "isa 0x\(String(other.rawValue, radix: 16))"
        }
    }

    private static var isa: ISABits { ISABits(dnnl_get_effective_cpu_isa()) }

    /// The number format of its activations.
    var dataType: dnnl_data_type_t {
        switch activations {
        case .bf16: return dnnl_bf16
        default: return dnnl_f32
        }
    }
}

/// oneDNN's ISA values are nested bit sets: a richer one holds every bit of those it extends.
private struct ISABits {
    let bits: UInt32
    init(_ isa: dnnl_cpu_isa_t) { bits = isa.rawValue }
    func contains(_ isa: dnnl_cpu_isa_t) -> Bool { bits & isa.rawValue == isa.rawValue }
}
