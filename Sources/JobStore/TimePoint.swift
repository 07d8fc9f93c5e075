import Foundation

/// When a field was imaged, as the plate's names tell it: the scan's number in a series
/// (ImageXpress `TimePoint_3`, Phenix `sk3`, a manifest's `3`), the time since the first scan
/// (Incucyte `01d04h00m`) or the scan's clock time (Incucyte `2018y08m17d_01h56m`).
public struct TimePoint: Sendable, Hashable, Comparable {
    /// As shown and queried: "3", "01d04h00m" or "2018-08-17 01:56".
    public let label: String
    /// Orders a plate's time points: the scan's number, or minutes.
    public let order: Int

    public init(label: String, order: Int) {
        self.label = label
        self.order = order
    }

    public init(scan: Int) {
        self.init(label: "\(scan)", order: scan)
    }

    public init(elapsedMinutes m: Int) {
        self.init(label: "\(Self.two(m / 1440))d\(Self.two(m / 60 % 24))h\(Self.two(m % 60))m", order: m)
    }

    /// Days, hours and minutes since the first scan, as a name writes them; nil when they pass
    /// what minutes can count (a name's digits are not bounded).
    public init?(days: Int, hours: Int, minutes: Int) {
        let (dayHours, o1) = days.multipliedReportingOverflow(by: 24)
        let (allHours, o2) = dayHours.addingReportingOverflow(hours)
        let (hourMinutes, o3) = allHours.multipliedReportingOverflow(by: 60)
        let (total, o4) = hourMinutes.addingReportingOverflow(minutes)
        guard !(o1 || o2 || o3 || o4) else { return nil }
        self.init(elapsedMinutes: total)
    }

    /// Minutes since 1970 in the imager's (unstated) time zone: only the order and the
    /// differences between a plate's scans matter.
    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int) {
        let days = Self.daysSince1970(year: year, month: month, day: day)
        self.init(label: "\(year)-\(Self.two(month))-\(Self.two(day)) \(Self.two(hour)):\(Self.two(minute))",
                  order: (days * 24 + hour) * 60 + minute)
    }

    /// What a user or a manifest writes: a scan number (`3`) or a time since the first scan
    /// (`01d04h00m`); nil for anything else.
    public init?(parsing text: String) {
        let t = text.trimmingCharacters(in: .whitespaces)
        if let n = Int(t), n >= 0 {
            self.init(scan: n)
        } else if let m = t.wholeMatch(of: /(\d+)d(\d{1,2})h(\d{1,2})m/), let d = Int(m.1), let h = Int(m.2), let min = Int(m.3),
                  let elapsed = TimePoint(days: d, hours: h, minutes: min) {
            self = elapsed
        } else {
            return nil
        }
    }

    public static func < (a: TimePoint, b: TimePoint) -> Bool { (a.order, a.label) < (b.order, b.label) }

    private static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
    private static func daysSince1970(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }
}
