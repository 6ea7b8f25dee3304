import PageStateMemory

/// Computes the manifest's per-memory chunk hashes. A chunk is 16 pages (64 KiB); its hash is the
/// SHA-256 of its pages' SHA-256 hashes, and chunks that read as all zeros are omitted — so a page
/// written with zeros and a page never written hash alike, and nothing depends on which files hold
/// the pages.
///
/// Hashes are cached per memory (`PageHashCache`): flushes hash the chunks they write while the
/// write runs, and a checkpoint only merges them into the previous checkpoint's list.
enum MemoryHashing {
    static let pagesPerChunk = UInt64(Manifest.memoryChunkPages)
    static let zeroPage = [UInt8](repeating: 0, count: Page.size).withUnsafeBytes { ContentHash.of($0) }

    /// Every non-zero chunk of `memory`; the cache's dirty marks are cleared.
    ///
    /// - Complexity: O(present pages) hashes of uncached pages.
    static func chunks(of memory: PageMap, cache: inout PageHashCache) -> [Manifest.Chunk] {
        _ = cache.takeDirtyChunks()
        var chunks = memory.presentIndices.map { $0 / pagesPerChunk }
        chunks.removeDuplicates()
        return chunks.compactMap { chunk in cache.chunkHash(chunk, of: memory).map { Manifest.Chunk(index: chunk, hash: $0) } }
    }

    /// `previous` with the chunks the cache marks dirty replaced, and those beyond the memory dropped.
    ///
    /// - Complexity: O(previous + d log d) for d dirty chunks.
    static func chunks(of memory: PageMap, previous: [Manifest.Chunk], cache: inout PageHashCache) -> [Manifest.Chunk] {
        let limit = (memory.sizeInPages + pagesPerChunk - 1) / pagesPerChunk
        let dirty = cache.takeDirtyChunks().filter { $0.index < limit }
        var result: [Manifest.Chunk] = []
        result.reserveCapacity(previous.count + dirty.count)
        var next = 0  // into `dirty`
        for chunk in previous where chunk.index < limit {
            while next < dirty.count, dirty[next].index < chunk.index {
                if let hash = dirty[next].hash { result.append(Manifest.Chunk(index: dirty[next].index, hash: hash)) }
                next += 1
            }
            if next < dirty.count, dirty[next].index == chunk.index {
                if let hash = dirty[next].hash { result.append(Manifest.Chunk(index: chunk.index, hash: hash)) }
                next += 1
            } else {
                result.append(chunk)
            }
        }
        for (index, hash) in dirty[next...] { if let hash { result.append(Manifest.Chunk(index: index, hash: hash)) } }
        return result
    }
}
