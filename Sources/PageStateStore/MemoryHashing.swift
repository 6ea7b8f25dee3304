import PageStateMemory

/// Computes the manifest's per-memory chunk hashes. A chunk is 16 pages (64 KiB); its hash is the
/// SHA-256 of its pages' SHA-256 hashes, and chunks that read as all zeros are omitted — so a page
/// written with zeros and a page never written hash alike, and nothing depends on which files hold
/// the pages.
///
/// Page hashes are cached per memory (`cache`): a checkpoint rehashes only the pages written since
/// the last one (the flush already hashed them while writing), not their whole chunks.
enum MemoryHashing {
    static let pagesPerChunk = UInt64(Manifest.memoryChunkPages)
    static let zeroPage = [UInt8](repeating: 0, count: Page.size).withUnsafeBytes { ContentHash.of($0) }

    /// Every non-zero chunk of `memory`.
    ///
    /// - Complexity: O(present pages) hashes of uncached pages.
    static func chunks(of memory: PageMap, cache: inout [PageIndex: ContentHash]) -> [Manifest.Chunk] {
        var chunks = memory.presentIndices.map { $0 / pagesPerChunk }
        chunks.removeDuplicates()
        return chunks.compactMap { hash(chunk: $0, of: memory, cache: &cache) }
    }

    /// `previous` with the chunks in `dirty` recomputed.
    ///
    /// - Complexity: O(previous + dirty × 16) cache lookups, plus hashes of uncached pages.
    static func chunks(of memory: PageMap, previous: [Manifest.Chunk], dirty: Set<UInt64>,
                       cache: inout [PageIndex: ContentHash]) -> [Manifest.Chunk] {
        var result = previous.filter { !dirty.contains($0.index) && $0.index * pagesPerChunk < memory.sizeInPages }
        for chunk in dirty { if let hashed = hash(chunk: chunk, of: memory, cache: &cache) { result.append(hashed) } }
        result.sort { $0.index < $1.index }
        return result
    }

    /// The chunk's hash, or nil when it reads as zeros or lies beyond the memory.
    static func hash(chunk: UInt64, of memory: PageMap, cache: inout [PageIndex: ContentHash]) -> Manifest.Chunk? {
        let first = chunk * pagesPerChunk
        guard first < memory.sizeInPages else { return nil }
        let hashes = (first..<(first + pagesPerChunk)).map { index in
            if let cached = cache[index] { return cached }
            guard memory.contains(index) else { return zeroPage }
            let hash = memory.withPage(index) { ContentHash.of($0) }
            cache[index] = hash
            return hash
        }
        guard hashes.contains(where: { $0 != zeroPage }) else { return nil }
        return Manifest.Chunk(index: chunk, hash: ContentHash.combining(hashes))
    }
}
