import Foundation
import Imaging
import JobStore
@_exported import PlateFixtures

import Testing

/// A plate of `images` images with `tiles` infer jobs each and one merge per image.
func samplePlate(name: String = "P1", images: Int = 2, tiles: Int = 3, maxAttempts: Int = 3) -> PlateSubmission {
    var newImages: [NewImage] = []
    var jobs: [NewJob] = []
    for i in 0..<images {
        let path = "/plates/\(name)/img\(i).png"
        newImages.append(NewImage(path: path, well: "B0\(i + 1)", field: 1, width: 704, height: 520, contentHash: "h\(i)"))
        var keys: [String] = []
        for t in 0..<tiles {
            let key = "infer/\(name)/\(i)/\(t)"
            keys.append(key)
            jobs.append(NewJob(key: key, kind: "infer", imagePath: path, args: "{\"t\":\(t)}", maxAttempts: maxAttempts))
        }
        jobs.append(NewJob(key: "merge/\(name)/\(i)", kind: "merge", imagePath: path, args: "{}", dependsOn: keys, maxAttempts: maxAttempts))
    }
    return PlateSubmission(plate: name, root: "/plates/\(name)", images: newImages, jobs: jobs)
}

func cell(_ type: String, area: Int = 100) -> CellRecord {
    CellRecord(cellType: type, score: 0.9, area: area, box: (1, 2, 10, 10), centroid: (5.5, 6.5), rle: "abc")
}
