/// A box in pixel coordinates, corners (x0, y0) inclusive and (x1, y1) exclusive, as torchvision.
public struct Box: Sendable, Equatable, Codable {
    public var x0: Float
    public var y0: Float
    public var x1: Float
    public var y1: Float

    public init(x0: Float, y0: Float, x1: Float, y1: Float) {
        self.x0 = x0
        self.y0 = y0
        self.x1 = x1
        self.y1 = y1
    }

    public var width: Float { max(0, x1 - x0) }
    public var height: Float { max(0, y1 - y0) }
    public var area: Float { width * height }

    public func iou(_ other: Box) -> Float {
        let w = min(x1, other.x1) - max(x0, other.x0)
        let h = min(y1, other.y1) - max(y0, other.y0)
        guard w > 0, h > 0 else { return 0 }
        let inter = w * h
        return inter / (area + other.area - inter)
    }

    public func offsetBy(dx: Float, dy: Float) -> Box {
        Box(x0: x0 + dx, y0: y0 + dy, x1: x1 + dx, y1: y1 + dy)
    }
}

/// One object a network found: where, how sure, and what cell type it thinks it is.
public struct Detection: Sendable, Equatable {
    public var box: Box
    public var score: Float
    /// One probability per class of the artifact's `classes`, summing to about 1.
    public var classProbabilities: [Float]

    public init(box: Box, score: Float, classProbabilities: [Float]) {
        self.box = box
        self.score = score
        self.classProbabilities = classProbabilities
    }

    public var label: Int {
        classProbabilities.indices.max(by: { classProbabilities[$0] < classProbabilities[$1] }) ?? 0
    }
}
