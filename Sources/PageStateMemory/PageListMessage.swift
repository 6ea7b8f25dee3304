/// A delta's pages as another process receives them: the allocator's identity and length, and a
/// (page index → place) list. The allocator's descriptor travels beside it as SCM_RIGHTS.
///
/// Wire format, little-endian (documented in design/formats.md):
/// `"PSPL"` · version u16 · 0 u16 · identity u64 · length u64 · count u64 ·
/// count × (index u64 · offset u64 · tag u32 · 0 u32).
public struct PageListMessage: Sendable, Hashable {
    public static let version: UInt16 = 1
    /// Entries one message may carry (32 MiB of entries), so a hostile count cannot exhaust memory.
    public static let maximumEntries = 1 << 20
    static let magic: UInt32 = 0x4C50_5350  // "PSPL" read as little-endian
    static let headerSize = 32
    static let entrySize = 24

    public var identity: UInt64
    public var length: UInt64
    public var locations: [PageLocation]

    public init(identity: UInt64, length: UInt64, locations: [PageLocation]) {
        self.identity = identity
        self.length = length
        self.locations = locations
    }

    /// Describes every page of `delta`, all of which must belong to `allocator`.
    ///
    /// - Complexity: O(n).
    public init(describing delta: PageDelta, in allocator: PageAllocator) {
        precondition(delta.allSatisfy { $0.page.allocator === allocator }, "every page must belong to the allocator")
        let description = allocator.describe()
        self.init(identity: description.identity, length: description.length,
                  locations: delta.map { PageLocation(index: $0.index, place: $0.page.location) })
    }

    /// The encoded message.
    ///
    /// - Complexity: O(n).
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.headerSize + locations.count * Self.entrySize)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        append(Self.magic); append(Self.version); append(UInt16(0))
        append(identity); append(length); append(UInt64(locations.count))
        for location in locations {
            append(location.index); append(location.place.offset); append(location.place.tag); append(UInt32(0))
        }
        return bytes
    }

    /// Decodes untrusted bytes.
    ///
    /// - Throws: `PageListMessageError` naming the first problem and its byte offset.
    /// - Complexity: O(n).
    public init(decoding bytes: [UInt8]) throws(PageListMessageError) {
        var reader = LittleEndianReader(bytes)
        guard bytes.count >= Self.headerSize else { throw .truncated(expected: Self.headerSize, actual: bytes.count) }
        guard reader.read(UInt32.self) == Self.magic else { throw .badMagic }
        let version = reader.read(UInt16.self)
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard reader.read(UInt16.self) == 0 else { throw .nonzeroReserved(offset: 6) }
        identity = reader.read(UInt64.self)
        length = reader.read(UInt64.self)
        let count = reader.read(UInt64.self)
        guard count <= UInt64(Self.maximumEntries) else { throw .tooManyEntries(count) }
        let expected = Self.headerSize + Int(count) * Self.entrySize
        guard bytes.count == expected else {
            throw bytes.count < expected ? .truncated(expected: expected, actual: bytes.count)
                                         : .trailingBytes(expected: expected, actual: bytes.count)
        }
        var locations: [PageLocation] = []
        locations.reserveCapacity(Int(count))
        for _ in 0..<count {
            let entryOffset = reader.position
            let index = reader.read(UInt64.self)
            let offset = reader.read(UInt64.self)
            let tag = reader.read(UInt32.self)
            guard reader.read(UInt32.self) == 0 else { throw .nonzeroReserved(offset: entryOffset + 20) }
            if let previous = locations.last, previous.index >= index { throw .unsortedIndex(offset: entryOffset) }
            locations.append(PageLocation(index: index, place: .init(offset: offset, tag: tag)))
        }
        self.locations = locations
    }
}

/// Why received page-list bytes were rejected.
public enum PageListMessageError: Error, Hashable {
    case truncated(expected: Int, actual: Int)
    case trailingBytes(expected: Int, actual: Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case nonzeroReserved(offset: Int)
    case tooManyEntries(UInt64)
    /// Indices must be strictly ascending: duplicates would make the delta ambiguous.
    case unsortedIndex(offset: Int)
}

/// Reads little-endian integers from a byte array whose length the caller has checked.
struct LittleEndianReader {
    let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read<T: FixedWidthInteger>(_: T.Type) -> T {
        let value = bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: T.self)) }
        position += MemoryLayout<T>.size
        return value
    }
}
