import Crypto
import PageState
@testable import PageStateStore
import PropertyChecking
import Testing

/// Chunk hashes kept incrementally (`PageHashCache` + `MemoryHashing`) against a plain model: for a
/// byte array, the SHA-256 of each 16-page chunk's page hashes, all-zero chunks omitted.
@Suite struct PageHashCacheTests {
    static let maxPages = 96

    /// A batch of page writes (index, fill), then whether a checkpoint follows.
    static let generator = zip(
        zip(Gen.int(in: 0...(maxPages - 1)), Gen.int(in: 0...3)).array(of: 0...40), Gen.bool
    ).array(of: 1...12)

    /// Random batches of whole-page writes (fill 0 writes zeros, which hash like absent pages),
    /// recorded as flushes do; at random checkpoints, the chunk list built from the previous one and
    /// the dirty chunks equals the model's, and so does one built from scratch with a new cache.
    @Test(.shrinking)
    func chunkHashesMatchTheModel() async throws {
        await checkProperty(count: 200, input: Self.generator) { batches in
            do { try Self.run(batches) } catch { Issue.record("\(error)") }
        }
    }

    static func run(_ batches: [([(Int, Int)], Bool)]) throws {
        let allocator = try PageAllocator(options: .init(backing: .memfd(name: "page-hash-cache-test")))
        var memory = PageMap(allocator: allocator)
        var model = [UInt8]()
        var cache = PageHashCache()
        var chunks: [Manifest.Chunk]?
        for (writes, checkpoint) in batches {
            var written = Set<PageIndex>()
            for (index, fill) in writes {
                let bytes = [UInt8](repeating: UInt8(fill), count: Page.size)
                try memory.write(bytes, at: UInt64(index * Page.size))
                if model.count < (index + 1) * Page.size { model += [UInt8](repeating: 0, count: (index + 1) * Page.size - model.count) }
                model.replaceSubrange((index * Page.size)..<((index + 1) * Page.size), with: bytes)
                written.insert(PageIndex(index))
            }
            let indices = written.sorted()
            let hashes = indices.map { index in memory.withPage(index) { ContentHash.of($0) } }
            cache.record(writing: indices, hashes: hashes, of: memory)
            guard checkpoint else { continue }
            let updated = chunks.map { MemoryHashing.chunks(of: memory, previous: $0, cache: &cache) }
                ?? MemoryHashing.chunks(of: memory, cache: &cache)
            #expect(updated == expectedChunks(model), "incremental, \(memory.sizeInPages) pages")
            var fresh = PageHashCache()
            #expect(MemoryHashing.chunks(of: memory, cache: &fresh) == expectedChunks(model), "from scratch")
            chunks = updated
        }
    }

    static func expectedChunks(_ model: [UInt8]) -> [Manifest.Chunk] {
        let pages = model.count / Page.size
        return stride(from: 0, to: pages, by: 16).compactMap { first in
            let hashes = (first..<(first + 16)).map { page -> [UInt8] in
                let bytes = page < pages ? Array(model[(page * Page.size)..<((page + 1) * Page.size)]) : [UInt8](repeating: 0, count: Page.size)
                return Array(SHA256.hash(data: bytes))
            }
            let zero = Array(SHA256.hash(data: [UInt8](repeating: 0, count: Page.size)))
            guard hashes.contains(where: { $0 != zero }) else { return nil }
            return Manifest.Chunk(index: UInt64(first / 16), hash: ContentHash(SHA256.hash(data: hashes.flatMap { $0 })))
        }
    }
}
