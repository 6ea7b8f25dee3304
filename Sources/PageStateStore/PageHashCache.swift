import Crypto
import PageStateMemory

/// The SHA-256 of a memory's pages and of its manifest chunks (16 pages, `MemoryHashing.pagesPerChunk`),
/// and which chunks changed since the last checkpoint. One table entry per chunk holds its page hashes
/// contiguously and its chunk hash, so a flush updates a chunk with one lookup and one 512-byte SHA-256
/// (while its write runs), and a checkpoint only collects the chunk hashes of the dirty entries.
///
/// Invariant: a known slot holds the hash of the page's current contents (zeros for a page never
/// written) in the memory the cache describes, and an entry whose slots are all known holds their
/// chunk hash. Flushes record every page they write, and a memory that shrank is rewritten with a
/// new cache, so the invariant survives every change.
struct PageHashCache: Sendable {
    fileprivate struct Entry: Sendable {
        var hashes = InlineArray<16, ContentHash>(repeating: MemoryHashing.zeroPage)
        /// Bit i: slot i holds the hash of page 16 × chunk + i.
        var known: UInt16 = 0
        var dirty = false
        /// Once every slot is known: the chunk's hash, nil when it reads as zeros.
        var chunkHash: ContentHash?

        /// Hashes the pages whose slots are unknown (absent pages read as zeros) and the chunk.
        mutating func complete(chunk: UInt64, of memory: PageMap) {
            let first = chunk * MemoryHashing.pagesPerChunk
            if known != UInt16.max {
                let present = memory.presentSlots(from: first)
                for slot in 0..<16 where known & (1 << slot) == 0 && present & (1 << slot) != 0 {
                    hashes[slot] = memory.withPage(first + UInt64(slot)) { ContentHash.of($0) }
                }
                known = UInt16.max
            }
            var allZero = true
            for slot in 0..<16 where hashes[slot] != MemoryHashing.zeroPage { allZero = false }
            if allZero {
                chunkHash = nil
            } else {
                var hasher = SHA256()
                withUnsafeBytes(of: hashes) { hasher.update(bufferPointer: $0) }
                chunkHash = ContentHash(hasher.finalize())
            }
        }
    }

    /// Chunk index → position in `entries` (small values keep the table cheap to grow).
    private var positions: [UInt64: Int] = [:]
    private var entries: [Entry] = []
    /// Chunks marked dirty since the last `takeDirtyChunks`, in marking order.
    private var dirty: [UInt64] = []

    /// Records that pages `indices` (ascending) of `memory` now hash to `hashes`: brings their
    /// chunks' page and chunk hashes up to date — hashing from `memory` the pages of those chunks not
    /// hashed yet — and marks the chunks dirty. Chunks are spread over the cores.
    ///
    /// - Complexity: O(k) for k pages: one lookup and one 512-byte SHA-256 per chunk touched, plus the
    ///   pages not hashed yet.
    mutating func record(writing indices: [PageIndex], hashes: [ContentHash], of memory: PageMap) {
        precondition(indices.count == hashes.count, "one hash per page")
        var starts: [Int] = []  // where each chunk's pages begin in `indices`
        var touched: [Int] = []  // each chunk's entry
        for position in indices.indices {
            let chunk = indices[position] / MemoryHashing.pagesPerChunk
            guard position == 0 || chunk != indices[position - 1] / MemoryHashing.pagesPerChunk else { continue }
            starts.append(position)
            let at = self.position(of: chunk)
            touched.append(at)
            if !entries[at].dirty {
                entries[at].dirty = true
                dirty.append(chunk)
            }
        }
        starts.append(indices.count)
        entries.withUnsafeMutableBufferPointer { entries in
            forEachPartConcurrently(of: touched.count, minimumPart: 256) { part in
                for position in part {  // each chunk's entry is written by its part only
                    let at = touched[position]
                    for page in starts[position]..<starts[position + 1] {
                        let slot = Int(indices[page] % MemoryHashing.pagesPerChunk)
                        entries[at].hashes[slot] = hashes[page]
                        entries[at].known |= 1 << slot
                    }
                    entries[at].complete(chunk: indices[starts[position]] / MemoryHashing.pagesPerChunk, of: memory)
                }
            }
        }
    }

    /// The chunks marked dirty since the last call, ascending, with their hashes (nil: reads as
    /// zeros); they are clean afterwards.
    ///
    /// - Complexity: O(d log d) for d dirty chunks.
    mutating func takeDirtyChunks() -> [(index: UInt64, hash: ContentHash?)] {
        defer { dirty = [] }
        return dirty.sorted().map { chunk in
            let at = positions[chunk]!
            entries[at].dirty = false
            return (chunk, entries[at].chunkHash)
        }
    }

    /// The hash of chunk `chunk` of `memory`, hashing (and caching) what is not known yet; nil when
    /// it reads as zeros.
    ///
    /// - Complexity: one lookup, plus one 512-byte SHA-256 and the pages not hashed yet when unknown.
    mutating func chunkHash(_ chunk: UInt64, of memory: PageMap) -> ContentHash? {
        let at = position(of: chunk)
        if entries[at].known != UInt16.max { entries[at].complete(chunk: chunk, of: memory) }
        return entries[at].chunkHash
    }

    /// The position of chunk `chunk`'s entry, made (nothing known) when missing.
    private mutating func position(of chunk: UInt64) -> Int {
        if let at = positions[chunk] { return at }
        positions[chunk] = entries.count
        entries.append(Entry())
        return entries.count - 1
    }
}
