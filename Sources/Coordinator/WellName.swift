/// Where on the plate an image was taken, read from its file name. Microscopes name files in
/// a few fixed styles; each is recognised by its own pattern.
public struct PlatePosition: Sendable, Equatable {
    public var well: String
    public var field: Int?

    public init(well: String, field: Int?) {
        self.well = well
        self.field = field
    }

    /// "b3" → "B03": one spelling so that queries by well match whatever the microscope wrote.
    static func normalizedWell(row: Substring, column: Int) -> String? {
        guard let letter = row.uppercased().first, letter.isLetter, (1...48).contains(column) else { return nil }
        return "\(letter)" + (column < 10 ? "0\(column)" : "\(column)")
    }

    /// The position encoded in `fileName` (no directory), or nil when no known style matches.
    public static func parse(fileName: String) -> PlatePosition? {
        let stem = fileName.split(separator: ".").first.map(String.init) ?? fileName
        for style in styles {
            if let p = style(stem) { return p }
        }
        return nil
    }

    private static let styles: [@Sendable (String) -> PlatePosition?] = [operetta, sartorius, imageXpress]

    /// Operetta / Harmony: `r02c03f01p01-ch1sk1fk1fl1` → row 2 = B, column 3, field 1.
    private static func operetta(_ s: String) -> PlatePosition? {
        let r = try! Regex("^r(\\d{2})c(\\d{2})f(\\d{2,3})")
        guard let m = s.firstMatch(of: r), let row = Int(m.output[1].substring!), let col = Int(m.output[2].substring!),
              (1...26).contains(row), let field = Int(m.output[3].substring!)
        else { return nil }
        let letter = Character(Unicode.Scalar(UInt8(64 + row)))
        return normalizedWell(row: Substring(String(letter)), column: col).map { PlatePosition(well: $0, field: field) }
    }

    /// Sartorius `sample_id`: `shsy5y[diff]_A10_4` or `astro[hippo]_E10-4_Vessel-714_Ph_3`.
    private static func sartorius(_ s: String) -> PlatePosition? {
        let r = try! Regex("^[A-Za-z0-9]+(\\[[^\\]]*\\])?_([A-Pa-p])(\\d{1,2})[-_](\\d+)")
        guard let m = s.firstMatch(of: r), let col = Int(m.output[3].substring!), let field = Int(m.output[4].substring!) else { return nil }
        return normalizedWell(row: m.output[2].substring!, column: col).map { PlatePosition(well: $0, field: field) }
    }

    /// MetaXpress / ImageXpress: `PLATE1_B02_s1_w1` (site = field; `_w` is the channel).
    private static func imageXpress(_ s: String) -> PlatePosition? {
        let r = try! Regex("(?:^|_)([A-Pa-p])(\\d{2})(?:_s(\\d+))?(?:_w\\d+)?(?:_|$)")
        guard let m = s.firstMatch(of: r), let col = Int(m.output[2].substring!) else { return nil }
        let field = m.output[3].substring.flatMap { Int($0) }
        return normalizedWell(row: m.output[1].substring!, column: col).map { PlatePosition(well: $0, field: field) }
    }
}
