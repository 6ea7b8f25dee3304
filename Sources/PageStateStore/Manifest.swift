import Crypto

/// The `MANIFEST` of a checkpoint, version 1 (design/formats.md).
///
/// Two parts. *Files*: every other file of the checkpoint, ascending by name, with the hash of each
/// 1 MiB chunk (SHA-256 of its 4 KiB blocks' SHA-256s, see `FileHashing`) and a file hash — what
/// `verify` checks byte for byte. *State*: for every guest
/// (ascending id) the hash of its metadata and, for every memory (ascending name), its size and the
/// hash of every 64 KiB chunk of its contents that is not all zeros (SHA-256 of its 16 pages' SHA-256s). The root hash covers only the
/// state part, so it is a function of the contents alone: the same guests, metadata and bytes give
/// the same root hash whatever history (flushes, merges, overlay files) produced them.
///
///     magic "PSMANIF1" u64, version u32, flags u32 (0), height u64, file chunk bytes u32, memory chunk pages u32
///     files u64; per file: name, size u64, chunks u64, chunk hashes…, file hash
///     state part (hashed into the root): guests u64; per guest: id u64, metadata hash, memories u32;
///       per memory: name, size in pages u64, chunks u64, (chunk index u64, hash)…
///     root hash; SHA-256 of everything before
struct Manifest: Hashable, Sendable {
    struct File: Hashable, Sendable {
        var name: String
        var size: UInt64
        var chunks: [ContentHash]

        /// SHA-256 of the size and the chunk hashes.
        var hash: ContentHash {
            var hasher = SHA256()
            withUnsafeBytes(of: size.littleEndian) { hasher.update(bufferPointer: $0) }
            for chunk in chunks { chunk.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
            return ContentHash(hasher.finalize())
        }
    }

    struct Chunk: Hashable, Sendable {
        var index: UInt64
        var hash: ContentHash
    }

    struct Memory: Hashable, Sendable {
        var name: String
        var sizeInPages: UInt64
        /// Non-zero chunks, ascending.
        var chunks: [Chunk]
    }

    struct Guest: Hashable, Sendable {
        var id: GuestID
        var metadataHash: ContentHash
        var memories: [Memory]
    }

    static let name = "MANIFEST"
    static let magic = UInt64(littleEndianBytes: Array("PSMANIF1".utf8))
    static let version: UInt32 = 1
    static let fileChunkBytes = 1 << 20
    static let memoryChunkPages = 16

    let height: Height
    let files: [File]
    let guests: [Guest]
    /// SHA-256 of a domain tag and the encoded state part.
    let rootHash: ContentHash

    private init(height: Height, sortedFiles: [File], guests: [Guest], rootHash: ContentHash) {
        (self.height, files, self.guests, self.rootHash) = (height, sortedFiles, guests, rootHash)
    }

    /// The manifest of `files` (any order) and `guests` at `height`, and its file bytes — encoded
    /// once, the root hash taken from the encoded state part.
    ///
    /// - Complexity: O(bytes).
    static func encoding(height: Height, files: [File], guests: [Guest]) -> (manifest: Manifest, bytes: [UInt8]) {
        let files = files.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var writer = ByteWriter()
        writer.append(Self.magic)
        writer.append(Self.version)
        writer.append(UInt32(0))
        writer.append(height)
        writer.append(UInt32(Self.fileChunkBytes))
        writer.append(UInt32(Self.memoryChunkPages))
        writer.append(UInt64(files.count))
        for file in files {
            writer.append(name: file.name)
            writer.append(file.size)
            writer.append(UInt64(file.chunks.count))
            for chunk in file.chunks { writer.append(chunk) }
            writer.append(file.hash)
        }
        let statePart = writer.bytes.count
        Self.encode(guests: guests, into: &writer)
        let rootHash = writer.bytes.withUnsafeBytes { Self.rootHash(ofStatePart: UnsafeRawBufferPointer(rebasing: $0[statePart...])) }
        writer.append(rootHash)
        writer.appendChecksum()
        return (Manifest(height: height, sortedFiles: files, guests: guests, rootHash: rootHash), writer.bytes)
    }

    /// The root hash of an encoded state part.
    private static func rootHash(ofStatePart bytes: UnsafeRawBufferPointer) -> ContentHash {
        var hasher = SHA256()
        hasher.update(data: Array("PageState state v1".utf8))
        hasher.update(bufferPointer: bytes)
        return ContentHash(hasher.finalize())
    }

    private static func encode(guests: [Guest], into writer: inout ByteWriter) {
        writer.append(UInt64(guests.count))
        for guest in guests {
            writer.append(guest.id)
            writer.append(guest.metadataHash)
            writer.append(UInt32(guest.memories.count))
            for memory in guest.memories {
                writer.append(name: memory.name)
                writer.append(memory.sizeInPages)
                writer.append(UInt64(memory.chunks.count))
                for chunk in memory.chunks {
                    writer.append(chunk.index)
                    writer.append(chunk.hash)
                }
            }
        }
    }

    /// Parses and checks untrusted bytes: checksum, magic, version, counts, order, chunk counts
    /// that match file sizes, file hashes and the root hash.
    ///
    /// - Complexity: O(bytes).
    init(path: String, bytes: UnsafeRawBufferPointer) throws(StoreError) {
        try ByteReader.verifyChecksum(path: path, bytes: bytes)
        var reader = ByteReader(path: path, bytes: UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.count - 32)]))
        guard try reader.read(UInt64.self) == Self.magic else { throw reader.failure("not a MANIFEST (bad magic)", at: 0) }
        let version: UInt32 = try reader.read()
        guard version == Self.version else { throw reader.failure("unsupported MANIFEST version \(version)", at: 8) }
        guard try reader.read(UInt32.self) == 0 else { throw reader.failure("unknown flags", at: 12) }
        height = try reader.read()
        guard try reader.read(UInt32.self) == UInt32(Self.fileChunkBytes) else { throw reader.failure("unsupported file chunk size", at: 24) }
        guard try reader.read(UInt32.self) == UInt32(Self.memoryChunkPages) else { throw reader.failure("unsupported memory chunk size", at: 28) }
        let fileCount = try reader.readCount(limit: reader.remaining / 50, what: "file count")
        var files: [File] = []
        for _ in 0..<fileCount {
            let start = reader.position
            let name = try reader.readName(after: files.last?.name, what: "file names")
            let size: UInt64 = try reader.read()
            let chunkCount = try reader.readCount(limit: reader.remaining / 32, what: "chunk count")
            guard UInt64(chunkCount) == (size + UInt64(Self.fileChunkBytes) - 1) / UInt64(Self.fileChunkBytes) else {
                throw reader.failure("\(chunkCount) chunks do not cover \(size) bytes", at: start)
            }
            var chunks: [ContentHash] = []
            chunks.reserveCapacity(chunkCount)
            for _ in 0..<chunkCount { chunks.append(try reader.readHash()) }
            let file = File(name: name, size: size, chunks: chunks)
            let hashAt = reader.position
            guard try reader.readHash() == file.hash else { throw reader.failure("file hash of \(name) does not match its chunks", at: hashAt) }
            files.append(file)
        }
        self.files = files
        let statePart = reader.position
        let guestCount = try reader.readCount(limit: reader.remaining / 44, what: "guest count")
        var guests: [Guest] = []
        for _ in 0..<guestCount {
            let start = reader.position
            let id: GuestID = try reader.read()
            if let last = guests.last, last.id >= id { throw reader.failure("guest ids not ascending", at: start) }
            let metadataHash = try reader.readHash()
            let memoryCount: UInt32 = try reader.read()
            var memories: [Memory] = []
            for _ in 0..<memoryCount {
                let name = try reader.readName(after: memories.last?.name, what: "memory names")
                let size: UInt64 = try reader.read()
                let chunkCount = try reader.readCount(limit: reader.remaining / 40, what: "chunk count")
                var chunks: [Chunk] = []
                chunks.reserveCapacity(chunkCount)
                for _ in 0..<chunkCount {
                    let at = reader.position
                    let chunk = Chunk(index: try reader.read(), hash: try reader.readHash())
                    if let last = chunks.last, last.index >= chunk.index { throw reader.failure("chunk indices not ascending", at: at) }
                    guard chunk.index < (size + UInt64(Self.memoryChunkPages) - 1) / UInt64(Self.memoryChunkPages) else {
                        throw reader.failure("chunk \(chunk.index) beyond the memory's \(size) pages", at: at)
                    }
                    chunks.append(chunk)
                }
                memories.append(Memory(name: name, sizeInPages: size, chunks: chunks))
            }
            guests.append(Guest(id: id, metadataHash: metadataHash, memories: memories))
        }
        let rootAt = reader.position
        self.guests = guests
        rootHash = Self.rootHash(ofStatePart: UnsafeRawBufferPointer(rebasing: bytes[statePart..<rootAt]))
        guard try reader.readHash() == rootHash else { throw reader.failure("root hash does not match the state part", at: rootAt) }
        guard reader.remaining == 0 else { throw reader.failure("\(reader.remaining) unexpected trailing bytes") }
    }

    /// The recorded entry for file `name`.
    ///
    /// - Complexity: O(log files).
    func file(named name: String) -> File? {
        var low = 0
        var high = files.count
        while low < high {
            let middle = (low + high) / 2
            if files[middle].name.utf8.lexicographicallyPrecedes(name.utf8) { low = middle + 1 } else { high = middle }
        }
        return low < files.count && files[low].name == name ? files[low] : nil
    }
}
