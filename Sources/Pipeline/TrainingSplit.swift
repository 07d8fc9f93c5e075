import CSV
import Foundation
import Imaging

/// The images of one split of a folder of training images, as a CSV that names each image's
/// split lists them: columns `id` and `split`, ids being file names without extension (as
/// ../shared/data's images.csv).
public enum TrainingSplit {
    /// The split's images in `folder`, sorted by name.
    public static func paths(folder: String, list: String, split: String) throws -> [String] {
        var text: String
        do { text = try String(contentsOfFile: list, encoding: .utf8) } catch {
            throw TrainingSplitError("\(list): cannot read it as UTF-8 text (\(error.localizedDescription)); give the CSV that lists each image's split")
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        let reader: CSVReader
        do { reader = try CSVReader(string: text, hasHeaderRow: true) } catch {
            throw TrainingSplitError("\(list): cannot read it as CSV (\(error))")
        }
        guard let header = reader.headerRow, let id = header.firstIndex(of: "id"), let s = header.firstIndex(of: "split") else {
            throw TrainingSplitError("\(list): needs columns id and split")
        }
        var ids: Set<String> = []
        while let row = reader.next() {
            if row.count > max(id, s) && row[s] == split { ids.insert(row[id]) }
        }
        if let error = reader.error { throw TrainingSplitError("\(list): is not CSV (\(error))") }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter {
            ImageFile.isImageName($0) && ids.contains(PathName.stem($0))
        }.sorted()
        guard !files.isEmpty else { throw TrainingSplitError("no image in \(folder) is in split \(split) of \(list)") }
        return files.map { PathName.joined(folder, $0) }
    }
}

public struct TrainingSplitError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
