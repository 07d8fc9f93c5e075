import Foundation
import Imaging
import Testing
@testable import Models

/// `--precision` as a plan: one choice for every network, exceptions by network, and `auto`
/// taking int8 only for a file whose int8 calibration a person marked validated.
@Suite struct PrecisionPlanTests {
    @Test(arguments: [("auto", "auto"), ("bf16", "bf16"), ("int8", "int8"), ("bf16,upernet=int8", "bf16,upernet=int8"),
                      ("upernet=int8", "auto,upernet=int8"), ("fp32, yolox=bf16 ,maskrcnn=int8", "fp32,maskrcnn=int8,yolox=bf16")])
    func aPlanIsReadAndWrittenBackTheWayItIsGiven(text: String, written: String) throws {
        let plan = try #require(PrecisionPlan(text))
        #expect(plan.description == written)
        #expect(PrecisionPlan(plan.description) == plan, "what `run` passes its workers reads back the same")
    }

    @Test(arguments: ["", "fp64", "bf16,fp32", "auto,auto", "upernet=int4", "=int8", "upernet=int8,upernet=bf16", "upernet:int8"])
    func anythingElseIsRefused(text: String) {
        #expect(PrecisionPlan(text) == nil)
    }

    @Test func exceptionsWinOverTheChoiceForAll() {
        let plan = PrecisionPlan(.fixed(.bf16), byNetwork: ["upernet": .int8])
        #expect(plan.precision(forModel: "/m/upernet.safetensors") == .int8)
        #expect(plan.precision(forModel: "/m/yolox.safetensors") == .bf16)
        #expect(PrecisionPlan(.fixed(.fp32)).precision(forModel: "/m/yolox.safetensors") == .fp32)
    }

    @Test func autoTakesInt8OnlyForAFileWhoseCalibrationIsValidatedAndCurrent() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("plateseg-plan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("yolox.safetensors").path
        try FileManager.default.copyItem(atPath: Fixture.path("yolox.safetensors"), toPath: path)
        let auto = PrecisionPlan()
        #expect(auto.precision(forModel: path) == Precision.fastest, "no calibration")
        var ranges = ActivationRanges(layers: [:], percentile: 99.99, images: ["a.png"],
                                      modelFile: ContentHash.of(try Data(contentsOf: URL(fileURLWithPath: path))))
        try ranges.write(besideModel: path)
        #expect(auto.precision(forModel: path) == Precision.fastest, "calibrated, not validated")
        ranges.validated = true
        try ranges.write(besideModel: path)
        #expect(auto.precision(forModel: path) == (Precision.int8.isNative ? .int8 : Precision.fastest))
        ranges.modelFile = "fnv1a64:0000000000000000"
        try ranges.write(besideModel: path)
        #expect(auto.precision(forModel: path) == Precision.fastest, "validated for another version of the file")
    }

    @Test func rangesWrittenBeforeValidationWasRecordedReadAsUnvalidated() throws {
        let json = #"{"images":["a.png"],"layers":{},"modelFile":"fnv1a64:0","percentile":99.99}"#
        #expect(try JSONDecoder().decode(ActivationRanges.self, from: Data(json.utf8)).validated == false)
    }

    @Test func theDescriptionNamesEachNetworksPrecisionWhenTheyDiffer() {
        let files = ["/m/yolox.safetensors", "/m/upernet.safetensors"]
        #expect(PrecisionPlan(.fixed(.fp32)).describe(modelFiles: files) == "fp32")
        #expect(PrecisionPlan(.fixed(.fp32), byNetwork: ["upernet": .int8]).describe(modelFiles: files).hasPrefix("upernet int8, yolox fp32"))
    }
}
