/// Where slots live in an allocator's backing file.
///
/// The file is a sequence of chunks; chunk `k` holds `1024 << k` page slots, preceded by `1 << k` tag
/// pages holding one 32-bit validation tag per slot. So the file grows geometrically, each chunk is one
/// mapping (O(log n) mappings for n pages), tags cost 0.1% of page bytes, and every translation between
/// slot numbers, file offsets and tag positions is a few shifts.
///
/// ```
/// chunk 0: [tag page ×1][slots 0..<1024]  chunk 1: [tag pages ×2][slots 1024..<3072]  ...
/// ```
enum AllocatorGeometry {
    static let pageSize = 4096
    /// Slots in chunk 0; also the number of 32-bit tags one tag page holds.
    static let firstChunkSlots: UInt64 = 1024
    /// Chunks an allocator may grow to: 1024 × (2^32 − 1) slots, i.e. the whole 32-bit slot space.
    static let maximumChunks = 32

    /// Slots in chunk `k`.
    static func slotCount(chunk k: Int) -> UInt64 { firstChunkSlots << UInt64(k) }
    /// Tag pages at the start of chunk `k`.
    static func tagPageCount(chunk k: Int) -> UInt64 { 1 << UInt64(k) }
    /// First slot of chunk `k`.
    static func firstSlot(chunk k: Int) -> UInt64 { firstChunkSlots * ((1 << UInt64(k)) - 1) }
    /// First file page of chunk `k`.
    static func firstFilePage(chunk k: Int) -> UInt64 { (firstChunkSlots + 1) * ((1 << UInt64(k)) - 1) }
    /// Bytes of chunk `k` in the file (tag pages plus slots).
    static func chunkBytes(chunk k: Int) -> Int { Int((firstChunkSlots + 1) << UInt64(k)) * pageSize }
    /// File length once chunks `0..<k` exist.
    static func fileLength(chunks k: Int) -> UInt64 { firstFilePage(chunk: k) * UInt64(pageSize) }

    /// The chunk holding `slot`.
    @inline(__always)
    static func chunk(ofSlot slot: UInt64) -> Int { 63 - (slot / firstChunkSlots + 1).leadingZeroBitCount }

    /// Byte offset of `slot`'s page within its chunk's mapping.
    @inline(__always)
    static func offsetInChunk(slot: UInt64, chunk k: Int) -> Int {
        Int(tagPageCount(chunk: k) + slot - firstSlot(chunk: k)) * pageSize
    }

    /// Byte offset of `slot`'s tag within its chunk's mapping.
    @inline(__always)
    static func tagOffsetInChunk(slot: UInt64, chunk k: Int) -> Int { Int(slot - firstSlot(chunk: k)) * 4 }

    /// File offset of `slot`'s page.
    static func fileOffset(ofSlot slot: UInt64) -> UInt64 {
        let k = chunk(ofSlot: slot)
        return fileLength(chunks: k) + UInt64(offsetInChunk(slot: slot, chunk: k))
    }

    /// Where a file offset points: a slot, or a reason it is not one.
    enum OffsetTarget: Equatable {
        case slot(UInt64)
        case misaligned
        case tagPage
    }

    /// Classifies a file offset; the caller checks it against the file's length.
    static func target(ofFileOffset offset: UInt64) -> OffsetTarget {
        guard offset % UInt64(pageSize) == 0 else { return .misaligned }
        let page = offset / UInt64(pageSize)
        let k = 63 - (page / (firstChunkSlots + 1) + 1).leadingZeroBitCount
        let local = page - firstFilePage(chunk: k)
        guard local >= tagPageCount(chunk: k) else { return .tagPage }
        return .slot(firstSlot(chunk: k) + local - tagPageCount(chunk: k))
    }

    /// The number of whole chunks in a file of `length` bytes, or nil when `length` is not a chunk boundary.
    static func chunkCount(fileLength length: UInt64) -> Int? {
        (0...maximumChunks).first { fileLength(chunks: $0) == length }
    }
}

extension AllocatorGeometry {
    /// Bytes of tag pages in chunks `0..<k`.
    static func tagBytes(chunks k: Int) -> UInt64 { ((1 << UInt64(k)) - 1) * UInt64(pageSize) }
}

/// Contiguous byte ranges of the backing file covering a set of slots, for punching holes.
struct FileRuns: Sequence {
    struct Run: Equatable { var offset: UInt64; var length: UInt64 }
    let runs: [Run]

    /// - Complexity: O(n log n) for n slots.
    init(slots: [UInt32]) {
        var runs: [Run] = []
        for slot in slots.sorted() {
            let offset = AllocatorGeometry.fileOffset(ofSlot: UInt64(slot))
            if let last = runs.last, last.offset + last.length == offset {
                runs[runs.count - 1].length += UInt64(AllocatorGeometry.pageSize)
            } else {
                runs.append(Run(offset: offset, length: UInt64(AllocatorGeometry.pageSize)))
            }
        }
        self.runs = runs
    }

    func makeIterator() -> IndexingIterator<[Run]> { runs.makeIterator() }
}
