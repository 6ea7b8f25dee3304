/// The `STATE` file of a checkpoint, version 1 (design/formats.md): which guests exist, their
/// metadata, and for each memory its size and overlay files (oldest first).
///
///     magic "PSSTATE1" u64, version u32, flags u32 (0), height u64, guests u64
///     per guest (ascending id): id u64, metadata length u64, metadata bytes, memories u32
///       per memory (ascending name): name (u16 length + UTF-8), size in pages u64, overlays u32, overlay ids u64…
///     SHA-256 of everything before
struct StateFile: Hashable, Sendable {
    struct Memory: Hashable, Sendable {
        var name: String
        var sizeInPages: UInt64
        /// Overlay ids, oldest first; file `overlays/<id>.ovl` of the checkpoint.
        var overlays: [UInt64]
    }

    struct Guest: Hashable, Sendable {
        var id: GuestID
        var metadata: [UInt8]
        var memories: [Memory]
    }

    static let name = "STATE"
    static let magic = UInt64(littleEndianBytes: Array("PSSTATE1".utf8))
    static let version: UInt32 = 1

    var height: Height
    /// Ascending by id; each guest's memories ascending by name.
    var guests: [Guest]

    func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.append(Self.magic)
        writer.append(Self.version)
        writer.append(UInt32(0))
        writer.append(height)
        writer.append(UInt64(guests.count))
        for guest in guests {
            writer.append(guest.id)
            writer.append(UInt64(guest.metadata.count))
            writer.append(bytes: guest.metadata)
            writer.append(UInt32(guest.memories.count))
            for memory in guest.memories {
                writer.append(name: memory.name)
                writer.append(memory.sizeInPages)
                writer.append(UInt32(memory.overlays.count))
                for overlay in memory.overlays { writer.append(overlay) }
            }
        }
        writer.appendChecksum()
        return writer.bytes
    }

    /// Parses and checks untrusted bytes.
    ///
    /// - Complexity: O(bytes).
    init(path: String, bytes: UnsafeRawBufferPointer) throws(StoreError) {
        try ByteReader.verifyChecksum(path: path, bytes: bytes)
        var reader = ByteReader(path: path, bytes: UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - 32)]))
        guard try reader.read(UInt64.self) == Self.magic else { throw reader.failure("not a STATE file (bad magic)", at: 0) }
        let version: UInt32 = try reader.read()
        guard version == Self.version else { throw reader.failure("unsupported STATE version \(version)", at: 8) }
        guard try reader.read(UInt32.self) == 0 else { throw reader.failure("unknown flags", at: 12) }
        height = try reader.read()
        let guestCount = try reader.readCount(limit: reader.remaining / 20, what: "guest count")
        guests = []
        guests.reserveCapacity(guestCount)
        var overlaysSeen = Set<UInt64>()
        for _ in 0..<guestCount {
            let start = reader.position
            let id: GuestID = try reader.read()
            if let last = guests.last, last.id >= id { throw reader.failure("guest ids not ascending", at: start) }
            let metadataCount = try reader.readCount(limit: reader.remaining, what: "metadata length")
            let metadata = Array(try reader.read(count: metadataCount))
            let memoryCount: UInt32 = try reader.read()
            var memories: [Memory] = []
            for _ in 0..<memoryCount {
                let memoryStart = reader.position
                let name = try reader.readName(after: memories.last?.name, what: "memory names")
                let size: UInt64 = try reader.read()
                guard size <= PageMapLimits.maximumPages else { throw reader.failure("memory size \(size) out of range", at: memoryStart) }
                let overlayCount: UInt32 = try reader.read()
                guard Int(overlayCount) <= reader.remaining / 8 else { throw reader.failure("overlay count \(overlayCount) exceeds the file") }
                var overlays: [UInt64] = []
                for _ in 0..<overlayCount {
                    let at = reader.position
                    let overlay: UInt64 = try reader.read()
                    guard overlaysSeen.insert(overlay).inserted else { throw reader.failure("overlay \(overlay) listed twice", at: at) }
                    overlays.append(overlay)
                }
                memories.append(Memory(name: name, sizeInPages: size, overlays: overlays))
            }
            guests.append(Guest(id: id, metadata: metadata, memories: memories))
        }
        guard reader.remaining == 0 else { throw reader.failure("\(reader.remaining) unexpected trailing bytes") }
    }

    init(height: Height, guests: [Guest]) {
        self.height = height
        self.guests = guests
    }

    /// Every overlay id, in file order.
    var overlayIDs: [UInt64] { guests.flatMap { $0.memories.flatMap(\.overlays) } }
}
