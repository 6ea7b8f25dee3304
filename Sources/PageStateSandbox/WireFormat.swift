/// Where the little-endian fields of a host ⇄ worker message go (the encoding is in `sandbox.md`).
/// A message encodes itself into any sink (`WireEncodable`), so it is sized first and then written
/// once, straight into its destination: a mailbox slot, or an array of exactly its size.
protocol WireSink {
    mutating func append<I: FixedWidthInteger>(_ value: I)
    mutating func append(raw bytes: UnsafeRawBufferPointer)
}

extension WireSink {
    /// A length-prefixed (UInt32) byte string.
    mutating func append(bytes: [UInt8]) {
        append(UInt32(bytes.count))
        bytes.withUnsafeBytes { append(raw: $0) }
    }

    /// A length-prefixed UTF-8 string.
    mutating func append(string: String) {
        var string = string
        string.withUTF8 { utf8 in
            append(UInt32(utf8.count))
            append(raw: UnsafeRawBufferPointer(utf8))
        }
    }
}

/// Counts the bytes an encoding takes.
struct WireSizer: WireSink {
    private(set) var count = 0

    @inline(__always)
    mutating func append<I: FixedWidthInteger>(_: I) { count += MemoryLayout<I>.size }
    mutating func append(raw bytes: UnsafeRawBufferPointer) { count += bytes.count }
}

/// Writes an encoding into memory sized for it; writing past the end is a bug, and traps.
struct WireBufferWriter: WireSink {
    private let buffer: UnsafeMutableRawBufferPointer
    private(set) var position = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }

    @inline(__always)
    mutating func append<I: FixedWidthInteger>(_ value: I) {
        precondition(buffer.count - position >= MemoryLayout<I>.size, "encoding larger than its size")
        buffer.storeBytes(of: value.littleEndian, toByteOffset: position, as: I.self)
        position += MemoryLayout<I>.size
    }

    mutating func append(raw bytes: UnsafeRawBufferPointer) {
        precondition(buffer.count - position >= bytes.count, "encoding larger than its size")
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        buffer.baseAddress!.advanced(by: position).copyMemory(from: source, byteCount: bytes.count)
        position += bytes.count
    }
}

/// A message body that encodes itself into any `WireSink`.
protocol WireEncodable {
    func encode<Sink: WireSink>(into sink: inout Sink)
}

extension WireEncodable {
    /// The encoding's size in bytes.
    ///
    /// - Complexity: O(fields); no bytes are copied.
    var encodedCount: Int {
        var sizer = WireSizer()
        encode(into: &sizer)
        return sizer.count
    }

    /// Writes the encoding into `buffer`, which must be exactly `encodedCount` bytes.
    func encode(into buffer: UnsafeMutableRawBufferPointer) {
        var writer = WireBufferWriter(buffer)
        encode(into: &writer)
        precondition(writer.position == buffer.count, "encoding smaller than its size")
    }

    /// The encoding as an array.
    func encoded() -> [UInt8] {
        let count = encodedCount
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            encode(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }
}

/// Bytes already encoded travel as they are.
extension Array: WireEncodable where Element == UInt8 {
    func encode<Sink: WireSink>(into sink: inout Sink) { withUnsafeBytes { sink.append(raw: $0) } }
}

/// Reads little-endian fields from untrusted bytes; every read checks bounds and throws
/// `ProtocolError.malformed` with the offset of the field that did not fit.
struct WireReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inline(__always)
    mutating func read<I: FixedWidthInteger>(_: I.Type = I.self) throws(ProtocolError) -> I {
        let size = MemoryLayout<I>.size
        guard bytes.count - position >= size else { throw Self.endsInsideField(at: position) }
        let value = bytes.withUnsafeBytes { I(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: I.self)) }
        position += size
        return value
    }

    // The errors of the inlined reads, built out of line.

    @inline(never)
    private static func endsInsideField(at offset: Int) -> ProtocolError { .malformed(offset: offset, "message ends inside a field") }

    @inline(never)
    private static func badLength(_ count: Int, limit: Int, at offset: Int) -> ProtocolError {
        count > limit ? .malformed(offset: offset, "byte string of \(count) bytes exceeds \(limit)")
            : .malformed(offset: offset, "byte string runs past the message")
    }

    @inline(never)
    private static func badCount(_ count: UInt64, limit: Int, at offset: Int) -> ProtocolError {
        .malformed(offset: offset, "count \(count) exceeds the message or the limit \(limit)")
    }

    /// A length-prefixed byte string of at most `limit` bytes.
    mutating func readBytes(limit: Int) throws(ProtocolError) -> [UInt8] {
        Array(bytes[try readLengthPrefixed(limit: limit)])
    }

    /// A length-prefixed UTF-8 string of at most `limit` bytes, validated where it lies: decoding
    /// repairs nothing in valid UTF-8, so the bytes are valid exactly when the decoded string's are
    /// the same (`String(validating:as:)` takes an unspecialized path here, ~100 ns per entry-point name);
    /// ASCII needs no comparison.
    mutating func readString(limit: Int) throws(ProtocolError) -> String {
        let start = position
        let range = try readLengthPrefixed(limit: limit)
        let string = bytes.withUnsafeBufferPointer { buffer in
            let encoded = UnsafeBufferPointer(rebasing: buffer[range])
            let decoded = String(decoding: encoded, as: UTF8.self)
            // ASCII is valid UTF-8; the comparison costs ~25 ns per entry-point name.
            return (encoded.allSatisfy { $0 < 0x80 } || decoded.utf8.elementsEqual(encoded)) ? decoded : nil
        }
        guard let string else { throw .malformed(offset: start, "string is not UTF-8") }
        return string
    }

    /// Reads a UInt32 length and skips that many bytes, returning where they are.
    @inline(__always)
    private mutating func readLengthPrefixed(limit: Int) throws(ProtocolError) -> Range<Int> {
        let start = position
        let count = Int(try read(UInt32.self))
        guard count <= limit, bytes.count - position >= count else { throw Self.badLength(count, limit: limit, at: start) }
        defer { position += count }
        return position..<(position + count)
    }

    /// A count of entries of `entrySize` bytes each that must fit in the rest of the message.
    @inline(__always)
    mutating func readCount(entrySize: Int, limit: Int) throws(ProtocolError) -> Int {
        let start = position
        let count = try read(UInt64.self)
        guard count <= UInt64(limit), Int(count) * entrySize <= bytes.count - position else {
            throw Self.badCount(count, limit: limit, at: start)
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
