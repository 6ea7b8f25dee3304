/// Appends little-endian fields: the encoding of every host ⇄ worker message (`sandbox.md`).
struct WireWriter {
    private(set) var bytes: [UInt8] = []

    /// A writer with room for `capacity` bytes before it has to grow (most messages are small).
    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func append<I: FixedWidthInteger>(_ value: I) {
        // Byte by byte: each append is an inlined store into reserved room, where appending the
        // value's raw bytes takes the generic sequence path (over a hundred instructions a field).
        for shift in stride(from: 0, to: I.bitWidth, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
    }

    /// A length-prefixed (UInt32) byte string.
    mutating func append(bytes more: [UInt8]) {
        append(UInt32(more.count))
        bytes.append(contentsOf: more)
    }

    /// A length-prefixed UTF-8 string.
    mutating func append(string: String) { append(bytes: Array(string.utf8)) }
}

/// Reads little-endian fields from untrusted bytes; every read checks bounds and throws
/// `ProtocolError.malformed` with the offset of the field that did not fit.
struct WireReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read<I: FixedWidthInteger>(_: I.Type = I.self) throws(ProtocolError) -> I {
        let size = MemoryLayout<I>.size
        guard bytes.count - position >= size else { throw .malformed(offset: position, "message ends inside a field") }
        let value = bytes.withUnsafeBytes { I(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: I.self)) }
        position += size
        return value
    }

    /// A length-prefixed byte string of at most `limit` bytes.
    mutating func readBytes(limit: Int) throws(ProtocolError) -> [UInt8] {
        let start = position
        let count = Int(try read(UInt32.self))
        guard count <= limit else { throw .malformed(offset: start, "byte string of \(count) bytes exceeds \(limit)") }
        guard bytes.count - position >= count else { throw .malformed(offset: start, "byte string runs past the message") }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func readString(limit: Int) throws(ProtocolError) -> String {
        let start = position
        let raw = try readBytes(limit: limit)
        guard let string = String(validating: raw, as: UTF8.self) else { throw .malformed(offset: start, "string is not UTF-8") }
        return string
    }

    /// A count of entries of `entrySize` bytes each that must fit in the rest of the message.
    mutating func readCount(entrySize: Int, limit: Int) throws(ProtocolError) -> Int {
        let start = position
        let count = try read(UInt64.self)
        guard count <= UInt64(limit), Int(count) * entrySize <= bytes.count - position else {
            throw .malformed(offset: start, "count \(count) exceeds the message or the limit \(limit)")
        }
        return Int(count)
    }

    /// Throws unless every byte was read.
    func finish() throws(ProtocolError) {
        guard position == bytes.count else { throw .malformed(offset: position, "\(bytes.count - position) trailing bytes") }
    }
}

/// Why bytes from the other side of a sandbox connection were rejected.
public enum ProtocolError: Error, Hashable, CustomStringConvertible {
    /// A field did not fit or did not make sense, at this byte offset of the message.
    case malformed(offset: Int, String)
    /// A message or payload larger than the configured limit.
    case oversized(bytes: UInt64, limit: UInt64)
    /// A message of a type not expected at this point.
    case unexpected(String)

    public var description: String {
        switch self {
        case .malformed(let offset, let reason): "malformed message at byte \(offset): \(reason)"
        case .oversized(let bytes, let limit): "message of \(bytes) bytes exceeds the limit of \(limit)"
        case .unexpected(let what): "unexpected message: \(what)"
        }
    }
}
