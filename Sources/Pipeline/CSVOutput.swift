import CSV
import Foundation

/// RFC 4180 CSV through CSV.swift: fields holding a comma, a quote or a line break are quoted,
/// quotes doubled, rows end with a line feed.
///
/// CSV.swift checks every field for those characters through Foundation and writes a byte at a
/// time: about 60 µs for a cell's row, a third of the 100,000 rows a second an export of a
/// night's plates needs. A row none of whose fields holds one of them is written as CSV.swift
/// writes it, its fields joined by commas (`CSVOutputTests` checks the two agree); every other
/// row goes through CSV.swift.
public final class CSVOutput {
    private let stream: GatheringStream

    /// Writes to `handle` (a file, or standard output); errors name `name`.
    public init(_ handle: FileHandle, name: String) throws {
        stream = GatheringStream(handle, name: name)
    }

    public func write(_ row: [String]) throws {
        if row.allSatisfy(Self.isPlain) {
            stream.append(row)
        } else {
            // A writer's first row has no line break before it: one writer per such row.
            let writer = try CSVWriter(stream: stream)
            do { try writer.write(row: row) } catch {
                throw stream.failure ?? CSVOutputError("\(stream.name): \(error)")
            }
        }
        stream.append(0x0A)
        if let failure = stream.failure { throw failure }
    }

    /// Writes what is gathered; throws what the disk said.
    public func finish() throws {
        try stream.flush()
    }

    /// Needs no quotes: no comma, quote, carriage return or line feed.
    static func isPlain(_ field: String) -> Bool {
        !field.utf8.contains { $0 == 0x2C || $0 == 0x22 || $0 == 0x0D || $0 == 0x0A }
    }
}

public struct CSVOutputError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// An OutputStream that gathers bytes and hands them to a file in pieces of a megabyte.
private final class GatheringStream: OutputStream {
    private let handle: FileHandle
    let name: String
    private var buffer: [UInt8] = []
    private(set) var failure: CSVOutputError?

    init(_ handle: FileHandle, name: String) {
        self.handle = handle
        self.name = name
        super.init(toMemory: ())
        buffer.reserveCapacity(1 << 20)
    }

    /// Foundation asks every subclass for this one; it writes nowhere.
    required init(toMemory: ()) {
        handle = FileHandle.nullDevice
        name = "/dev/null"
        super.init(toMemory: ())
    }

    override var streamStatus: Stream.Status { failure == nil ? .open : .error }
    override var hasSpaceAvailable: Bool { true }
    override func open() {}
    override func close() {}

    override func write(_ bytes: UnsafePointer<UInt8>, maxLength length: Int) -> Int {
        guard failure == nil else { return -1 }
        buffer.append(contentsOf: UnsafeBufferPointer(start: bytes, count: length))
        if buffer.count >= 1 << 20 { try? flush() }
        return failure == nil ? length : -1
    }

    func append(_ byte: UInt8) {
        buffer.append(byte)
    }

    /// Fields joined by commas.
    func append(_ fields: [String]) {
        for (i, field) in fields.enumerated() {
            if i > 0 { buffer.append(0x2C) }
            buffer.append(contentsOf: field.utf8)
        }
        if buffer.count >= 1 << 20 { try? flush() }
    }

    func flush() throws {
        if failure == nil, !buffer.isEmpty {
            do { try handle.write(contentsOf: buffer) } catch {
                failure = CSVOutputError("\(name): cannot write (\(error.localizedDescription))")
            }
            buffer.removeAll(keepingCapacity: true)
        }
        if let failure { throw failure }
    }
}
