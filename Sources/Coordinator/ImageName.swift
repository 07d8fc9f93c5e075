import JobStore

/// What an image's name says about it: where on the plate, when, in which channel and plane.
/// Imagers name files in a few fixed styles; each is recognised by its own pattern.
public struct ImageIdentity: Sendable, Equatable {
    public var well: String
    public var field: Int?
    public var timepoint: TimePoint?
    public var channel: String?
    public var plane: Int?

    public init(well: String, field: Int?, timepoint: TimePoint? = nil, channel: String? = nil, plane: Int? = nil) {
        self.well = well
        self.field = field
        self.timepoint = timepoint
        self.channel = channel
        self.plane = plane
    }

    /// "b3" → "B03": one spelling so that queries by well match whatever the imager wrote.
    static func normalizedWell(row: Substring, column: Int) -> String? {
        WellName.normalized(row: row, column: column)
    }

    /// The identity encoded in `fileName` (no folder), or nil when no known style matches.
    public static func parse(fileName: String) -> ImageIdentity? {
        let stem = fileName.split(separator: ".").first.map(String.init) ?? fileName
        for style in styles {
            if let identity = style(stem) { return identity }
        }
        return nil
    }

    /// As `parse(fileName:)`, with what ImageXpress puts in folder names: `TimePoint_N` is the
    /// time point and `ZStep_N` the plane.
    public static func parse(relativePath: String) -> ImageIdentity? {
        let parts = relativePath.split(separator: "/")
        guard let name = parts.last, var identity = parse(fileName: String(name)) else { return nil }
        for folder in parts.dropLast() {
            if let n = numbered(folder, prefix: "TimePoint_"), identity.timepoint == nil {
                identity.timepoint = TimePoint(scan: n)
            } else if let n = numbered(folder, prefix: "ZStep_"), identity.plane == nil {
                identity.plane = n
            }
        }
        return identity
    }

    /// ImageXpress writes a small preview beside every image (`…_w1_thumb<GUID>.tif`): not a field.
    public static func isThumbnail(fileName: String) -> Bool {
        fileName.firstMatch(of: thumbnail) != nil
    }

    private static func numbered(_ folder: Substring, prefix: String) -> Int? {
        guard folder.hasPrefix(prefix) else { return nil }
        return Int(folder.dropFirst(prefix.count))
    }

    private static let styles: [@Sendable (String) -> ImageIdentity?] = [phenix, cellVoyager, incucyte, cellomics, sartorius, imageXpress]

    nonisolated(unsafe) private static let thumbnail = try! Regex("_w\\d+_thumb")
    nonisolated(unsafe) private static let phenixPattern = try! Regex("^r(\\d{2})c(\\d{2})f(\\d{2,3})(?:p(\\d{2,3}))?(?:-ch(\\d+))?(?:sk(\\d+))?")
    nonisolated(unsafe) private static let cellVoyagerPattern = try! Regex("_([A-Pa-p])(\\d{2})_T(\\d{4})F(\\d{3})L\\d{2}A\\d{2}Z(\\d{2})C(\\d{2})$")
    nonisolated(unsafe) private static let incucytePattern = try! Regex(
        "^[^_]+_(?:([A-Za-z][A-Za-z0-9]*)_)?([A-Pa-p])(\\d{1,2})_(\\d+)_(?:(\\d+)d(\\d{2})h(\\d{2})m|(\\d{4})y(\\d{2})m(\\d{2})d_(\\d{2})h(\\d{2})m)(?:_|$)")
    nonisolated(unsafe) private static let cellomicsPattern = try! Regex("_([A-Pa-p])(\\d{2})f(\\d{2,3})d(\\d)$")
    nonisolated(unsafe) private static let sartoriusPattern = try! Regex("^[A-Za-z0-9]+(\\[[^\\]]*\\])?_([A-Pa-p])(\\d{1,2})[-_](\\d+)")
    nonisolated(unsafe) private static let imageXpressPattern = try! Regex("(?:^|_)([A-Pa-p])(\\d{2})(?:_s(\\d+))?(?:_w(\\d+))?(?=$|_|\\[|[0-9A-F]{8}-)")

    private static func int(_ m: Regex<AnyRegexOutput>.Match, _ i: Int) -> Int? {
        m.output[i].substring.flatMap { Int($0) }
    }

    /// Opera Phenix / Operetta (Harmony): `r02c03f01p01-ch1sk1fk1fl1` → row 2 = B, column 3,
    /// field 1, plane 1, channel ch1, time point 1.
    private static func phenix(_ s: String) -> ImageIdentity? {
        guard let m = s.firstMatch(of: phenixPattern), let row = int(m, 1), let col = int(m, 2), (1...26).contains(row),
              let field = int(m, 3)
        else { return nil }
        let letter = Character(Unicode.Scalar(UInt8(64 + row)))
        return normalizedWell(row: Substring(String(letter)), column: col).map {
            ImageIdentity(well: $0, field: field, timepoint: int(m, 6).map(TimePoint.init(scan:)),
                          channel: int(m, 5).map { "ch\($0)" }, plane: int(m, 4))
        }
    }

    /// Yokogawa CellVoyager: `<plate>_D08_T0001F001L01A01Z01C01` → time point 1, field 1, plane 1, channel C01.
    private static func cellVoyager(_ s: String) -> ImageIdentity? {
        guard let m = s.firstMatch(of: cellVoyagerPattern), let col = int(m, 2), let t = int(m, 3), let field = int(m, 4),
              let channel = m.output[6].substring
        else { return nil }
        return normalizedWell(row: m.output[1].substring!, column: col).map {
            ImageIdentity(well: $0, field: field, timepoint: TimePoint(scan: t), channel: "C\(channel)", plane: int(m, 5))
        }
    }

    /// Incucyte: `VID<vessel>_[<channel>_]<well>_<field>_<DD>d<HH>h<MM>m` (time since the first
    /// scan) or `…_<YYYY>y<MM>m<DD>d_<HH>h<MM>m` (the scan's clock time).
    private static func incucyte(_ s: String) -> ImageIdentity? {
        guard let m = s.firstMatch(of: incucytePattern), let col = int(m, 3), let field = int(m, 4) else { return nil }
        let time: TimePoint?
        if let d = int(m, 5), let h = int(m, 6), let min = int(m, 7) {
            time = TimePoint(days: d, hours: h, minutes: min)
        } else if let y = int(m, 8), let mo = int(m, 9), let d = int(m, 10), let h = int(m, 11), let min = int(m, 12) {
            time = TimePoint(year: y, month: mo, day: d, hour: h, minute: min)
        } else {
            time = nil
        }
        guard let time else { return nil }
        return normalizedWell(row: m.output[2].substring!, column: col).map {
            ImageIdentity(well: $0, field: field, timepoint: time, channel: m.output[1].substring.map(String.init))
        }
    }

    /// Thermo Cellomics: `<prefix>_<barcode>_D03f00d0` → field 0, channel d0.
    private static func cellomics(_ s: String) -> ImageIdentity? {
        guard let m = s.firstMatch(of: cellomicsPattern), let col = int(m, 2), let field = int(m, 3), let channel = int(m, 4) else { return nil }
        return normalizedWell(row: m.output[1].substring!, column: col).map {
            ImageIdentity(well: $0, field: field, channel: "d\(channel)")
        }
    }

    /// Sartorius `sample_id`: `shsy5y[diff]_A10_4` or `astro[hippo]_E10-4_Vessel-714_Ph_3`.
    private static func sartorius(_ s: String) -> ImageIdentity? {
        guard let m = s.firstMatch(of: sartoriusPattern), let col = int(m, 3), let field = int(m, 4) else { return nil }
        return normalizedWell(row: m.output[2].substring!, column: col).map { ImageIdentity(well: $0, field: field) }
    }

    /// MetaXpress / ImageXpress: `PLATE1_B02_s1_w1<GUID>` (site = field, wavelength = channel).
    /// The plate name is the user's and may itself look like a well (`F01_A01_s1`): the well is
    /// the token that carries the site or wavelength, else the last well-like token.
    private static func imageXpress(_ s: String) -> ImageIdentity? {
        let matches = s.matches(of: imageXpressPattern)
        let withSiteOrChannel = matches.last { $0.output[3].substring != nil || $0.output[4].substring != nil }
        guard let m = withSiteOrChannel ?? matches.last, let col = int(m, 2) else { return nil }
        return normalizedWell(row: m.output[1].substring!, column: col).map {
            ImageIdentity(well: $0, field: int(m, 3), channel: int(m, 4).map { "w\($0)" })
        }
    }
}
