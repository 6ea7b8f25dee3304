import Crypto

/// Appends little-endian fields to a byte buffer: the encoding of every state-manager file.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func append<I: FixedWidthInteger>(_ value: I) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(bytes more: some Sequence<UInt8>) { bytes.append(contentsOf: more) }

    /// A length-prefixed (UInt16) UTF-8 string.
    mutating func append(name: String) {
        let utf8 = Array(name.utf8)
        append(UInt16(utf8.count))
        append(bytes: utf8)
    }

    mutating func append(_ hash: ContentHash) { hash.withUnsafeBytes { bytes.append(contentsOf: $0) } }

    /// Appends the SHA-256 of everything written so far.
    mutating func appendChecksum() { append(bytes: SHA256.hash(data: bytes)) }
}

/// Reads little-endian fields from untrusted bytes, throwing `StoreError.malformedFile` with the
/// offset of the first field that does not fit or does not make sense.
struct ByteReader {
    let path: String
    let bytes: UnsafeRawBufferPointer
    /// Offset of `bytes[0]` in the file, for error messages.
    let base: UInt64
    private(set) var position = 0

    init(path: String, bytes: UnsafeRawBufferPointer, base: UInt64 = 0) {
        self.path = path
        self.bytes = bytes
        self.base = base
    }

    var remaining: Int { bytes.count - position }

    func failure(_ reason: String, at position: Int? = nil) -> StoreError {
        .malformedFile(path: path, offset: base + UInt64(position ?? self.position), reason: reason)
    }

    mutating func read<I: FixedWidthInteger>(_: I.Type = I.self) throws(StoreError) -> I {
        let size = MemoryLayout<I>.size
        guard remaining >= size else { throw failure("truncated: needs \(size) more bytes") }
        var value = I.zero
        withUnsafeMutableBytes(of: &value) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[position..<position + size])) }
        position += size
        return I(littleEndian: value)
    }

    /// `count` raw bytes.
    mutating func read(count: Int) throws(StoreError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw failure("truncated: needs \(count) more bytes") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + count])
    }

    /// A count that must not exceed `limit` (which callers derive from the remaining bytes, so a
    /// hostile count cannot make the reader allocate more than the file holds).
    mutating func readCount(limit: Int, what: String) throws(StoreError) -> Int {
        let start = position
        let value: UInt64 = try read()
        guard value <= UInt64(max(limit, 0)) else { throw failure("\(what) \(value) exceeds what the file can hold", at: start) }
        return Int(value)
    }

    /// A length-prefixed (UInt16) UTF-8 string that is a valid memory or file name.
    mutating func readName() throws(StoreError) -> String {
        let start = position
        let length: UInt16 = try read()
        let raw = try read(count: Int(length))
        guard let name = String(validating: raw, as: UTF8.self), MemoryName.isValid(name) else {
            throw failure("invalid name", at: start)
        }
        return name
    }

    /// A name (see `readName`) that must sort after `previous` in UTF-8 byte order.
    mutating func readName(after previous: String?, what: String) throws(StoreError) -> String {
        let start = position
        let name = try readName()
        if let previous, !previous.utf8.lexicographicallyPrecedes(name.utf8) { throw failure("\(what) not ascending", at: start) }
        return name
    }

    mutating func readHash() throws(StoreError) -> ContentHash { try ContentHash(Array(read(count: 32))) }

    /// Checks that the last 32 bytes are the SHA-256 of everything before them.
    static func verifyChecksum(path: String, bytes: UnsafeRawBufferPointer) throws(StoreError) {
        guard bytes.count >= 32 else { throw .malformedFile(path: path, offset: 0, reason: "shorter than its checksum") }
        let body = UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - 32)])
        guard SHA256.hash(data: body).elementsEqual(bytes[(bytes.count - 32)...]) else {
            throw .malformedFile(path: path, offset: UInt64(bytes.count - 32), reason: "checksum mismatch")
        }
    }
}


extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps `StoreError` as the thrown type.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(StoreError) -> R) throws(StoreError) -> R {
        try withUnsafeBytes { bytes in Result { () throws(StoreError) -> R in try body(bytes) } }.get()
    }
}
