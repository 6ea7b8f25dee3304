import Crypto
import PageStateMemory

/// Computes the manifest's per-memory chunk hashes: SHA-256 over each 16-page (64 KiB) chunk of a
/// memory's contents, chunks that read as all zeros omitted — so a page written with zeros and a
/// page never written hash alike, and chunk hashes do not depend on which files hold the pages.
enum MemoryHashing {
    static let pagesPerChunk = UInt64(Manifest.memoryChunkPages)

    /// Every non-zero chunk of `memory`.
    ///
    /// - Complexity: O(present pages × 4 KiB).
    static func chunks(of memory: PageMap) -> [Manifest.Chunk] {
        var candidates = Set<UInt64>()
        for (index, _) in memory.delta { candidates.insert(index / pagesPerChunk) }
        for layer in memory.layers {
            for range in layer.pageRanges where !range.isEmpty {
                for chunk in (range.lowerBound / pagesPerChunk)...((range.upperBound - 1) / pagesPerChunk) { candidates.insert(chunk) }
            }
        }
        return candidates.sorted().compactMap { hash(chunk: $0, of: memory) }
    }

    /// `previous` with the chunks in `dirty` recomputed from `memory`.
    ///
    /// - Complexity: O(previous + dirty × 64 KiB).
    static func chunks(of memory: PageMap, previous: [Manifest.Chunk], dirty: Set<UInt64>) -> [Manifest.Chunk] {
        var result = previous.filter { !dirty.contains($0.index) }
        result += dirty.compactMap { hash(chunk: $0, of: memory) }
        result.sort { $0.index < $1.index }
        return result
    }

    /// The chunk's hash, or nil when it reads as zeros or lies beyond the memory.
    static func hash(chunk: UInt64, of memory: PageMap) -> Manifest.Chunk? {
        let first = chunk * pagesPerChunk
        guard first < memory.sizeInPages else { return nil }
        let indices = Array(first..<(first + pagesPerChunk))
        return memory.withPages(indices) { pages in
            guard pages.contains(where: { !isZero($0) }) else { return nil }
            var hasher = SHA256()
            for page in pages { hasher.update(bufferPointer: page) }
            return Manifest.Chunk(index: chunk, hash: ContentHash(hasher.finalize()))
        }
    }

    private static func isZero(_ page: UnsafeRawBufferPointer) -> Bool {
        page.withMemoryRebound(to: UInt64.self) { words in words.allSatisfy { $0 == 0 } }
    }
}
