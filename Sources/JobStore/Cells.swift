/// One segmented cell as the merge stores it; plate, well and field come from its image.
public struct CellRecord: Sendable, Equatable {
    public var cellType: String
    public var score: Double
    public var area: Int
    public var box: (x: Int, y: Int, width: Int, height: Int)
    public var centroid: (x: Double, y: Double)
    /// The mask in COCO compressed RLE (column-major), in image coordinates.
    public var rle: String

    public init(cellType: String, score: Double, area: Int, box: (x: Int, y: Int, width: Int, height: Int),
                centroid: (x: Double, y: Double), rle: String) {
        self.cellType = cellType
        self.score = score
        self.area = area
        self.box = box
        self.centroid = centroid
        self.rle = rle
    }

    public static func == (a: CellRecord, b: CellRecord) -> Bool {
        a.cellType == b.cellType && a.score == b.score && a.area == b.area && a.box == b.box
            && a.centroid == b.centroid && a.rle == b.rle
    }
}

/// A stored cell with where it was found.
public struct LocatedCell: Sendable {
    public var plate: String
    public var well: String?
    public var field: Int?
    public var timepoint: TimePoint?
    public var channel: String?
    public var imagePath: String
    public var imageWidth: Int
    public var imageHeight: Int
    public var cell: CellRecord

    public init(plate: String, well: String?, field: Int?, timepoint: TimePoint?, channel: String?, imagePath: String, imageWidth: Int,
                imageHeight: Int, cell: CellRecord) {
        self.plate = plate
        self.well = well
        self.field = field
        self.timepoint = timepoint
        self.channel = channel
        self.imagePath = imagePath
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        self.cell = cell
    }
}

public struct CellQuery: Sendable {
    public var plate: String?
    public var well: String?
    public var cellType: String?
    /// One image, by the path it was submitted with.
    public var image: String?
    /// One time point, by its label.
    public var timepoint: String?

    public init(plate: String? = nil, well: String? = nil, cellType: String? = nil, image: String? = nil, timepoint: String? = nil) {
        self.plate = plate
        self.well = well
        self.cellType = cellType
        self.image = image
        self.timepoint = timepoint
    }
}

/// Cells of one type in one well at one time point (nil: the plate's images carry no time).
public struct WellCount: Sendable, Equatable {
    public var plate: String
    public var well: String
    public var timepoint: TimePoint?
    public var cellType: String
    public var cells: Int
    public var images: Int
    public var meanArea: Double
    public var meanScore: Double

    public init(plate: String, well: String, timepoint: TimePoint?, cellType: String, cells: Int, images: Int, meanArea: Double, meanScore: Double) {
        self.plate = plate
        self.well = well
        self.timepoint = timepoint
        self.cellType = cellType
        self.cells = cells
        self.images = images
        self.meanArea = meanArea
        self.meanScore = meanScore
    }
}
