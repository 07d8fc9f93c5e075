import Foundation

/// A well's name in one spelling: row letters and a two-digit column, "B03" for b3, B3 or B03.
/// Rows run A–Z, then AA–AF on a 1536-well plate (32 rows); columns 1–48.
public enum WellName {
    /// The name in its one spelling, or nil when `text` is not a well name.
    public static func normalized(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let letters = trimmed.prefix { $0.isASCII && $0.isLetter }
        guard let column = Int(trimmed.dropFirst(letters.count)) else { return nil }
        return normalized(row: letters, column: column)
    }

    public static func normalized(row: Substring, column: Int) -> String? {
        let row = row.uppercased()
        guard (1...48).contains(column), let position = rowIndex(row), position < 32 else { return nil }
        return row + (column < 10 ? "0\(column)" : "\(column)")
    }

    /// Where a well lies: row from 0 (A), column from 1; nil for a name that is not a well's.
    public static func position(_ well: String) -> (row: Int, column: Int)? {
        let letters = well.prefix { $0.isASCII && $0.isLetter }
        guard let row = rowIndex(letters.uppercased()), let column = Int(well.dropFirst(letters.count)), column >= 1 else { return nil }
        return (row, column)
    }

    /// The letters of row `index` (0 = A, 26 = AA).
    public static func rowName(_ index: Int) -> String {
        index < 26 ? String(UnicodeScalar(UInt8(65 + index))) : "A" + String(UnicodeScalar(UInt8(65 + index - 26)))
    }

    private static func rowIndex(_ letters: String) -> Int? {
        let values = letters.unicodeScalars.map { Int($0.value) - 65 }
        guard (1...2).contains(values.count), values.allSatisfy({ (0..<26).contains($0) }) else { return nil }
        return values.count == 1 ? values[0] : (values[0] == 0 ? 26 + values[1] : nil)
    }
}
