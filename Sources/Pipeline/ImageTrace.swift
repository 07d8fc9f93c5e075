import Foundation
import JobStore

/// Where an image's cells came from: its identity and content hash, its tile jobs with their
/// model files, the merge with its config.
public enum ImageTrace {
    /// `image`: as `ImageNames` reads a name; `plate` narrows the images it may name.
    public static func lines(_ db: any JobStore, image: String, plate: String?) throws -> [String] {
        let names = ImageNames(try db.images(plate: plate), plates: try db.plates())
        guard let m = try names.image(named: image) else { throw ImageNameError("no image \(image) in \(db.location)\(plate.map { " plate \($0)" } ?? "")") }
        let time = m.timepoint.map { "  time point \($0.label)" } ?? ""
        let channel = m.channel.map { "  channel \($0)" } ?? ""
        var lines = ["\(names.name(of: m))  plate \(m.plate)  well \(m.well ?? "?")  field \(m.field.map(String.init) ?? "?")\(time)\(channel)  \(m.contentHash)",
                     "  file \(m.path)"]
        for j in try db.provenance(imageID: m.id) {
            lines.append("  job \(j.job) \(j.kind) \(j.args)")
            if let p = j.provenance { lines.append("      from \(p)") }
        }
        return lines
    }
}
