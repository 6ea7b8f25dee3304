import PageStateMemory
import SystemPackage

/// An overlay file a memory's contents depend on, in tip/ or in the base checkpoint.
struct OverlayReference: Sendable, Hashable {
    var id: UInt64
    var path: FilePath
    var storedPages: UInt64
    /// The manifest entry computed while writing, until a checkpoint's manifest records it.
    var entry: Manifest.File?
}

/// What the files say about one memory as of the last flush, and how to bring them up to date.
struct MemoryRecord: Sendable {
    /// The flushed memory's layers, compared by identity: a later version with the same layers
    /// differs from it only in its delta, so the structural delta diff finds the changed pages.
    var layers: [any PageLayer]
    /// The flushed memory's delta.
    var delta: PageDelta
    var sizeInPages: UInt64
    /// Oldest first; together they hold the flushed memory's contents.
    var overlays: [OverlayReference]
    /// Chunk hashes as of the last checkpoint; nil when unknown (every chunk is then hashed).
    var chunks: [Manifest.Chunk]?
    /// Page hashes computed so far (by flushes, or read for a checkpoint) and the chunks written
    /// since the last checkpoint.
    var hashes = PageHashCache()

    /// Brings `chunks` up to `memory` (the flushed memory), rehashing the chunks written since the
    /// last checkpoint, or every chunk when none are known; returns them.
    ///
    /// - Complexity: O(chunks + dirty chunks), or O(present pages) when no chunks are known.
    mutating func updateChunks(of memory: PageMap) -> [Manifest.Chunk] {
        let updated = chunks.map { MemoryHashing.chunks(of: memory, previous: $0, cache: &hashes) }
            ?? MemoryHashing.chunks(of: memory, cache: &hashes)
        chunks = updated
        return updated
    }

    /// Whether `memory`'s layers are the flushed ones (so only its delta can differ).
    func hasSameLayers(as memory: PageMap) -> Bool {
        layers.count == memory.layers.count && zip(layers, memory.layers).allSatisfy { ($0 as AnyObject) === ($1 as AnyObject) }
    }
}

/// The manager's file-side state, only touched with `StateManager.tip` locked.
struct Tip: Sendable {
    var records: [GuestID: [String: MemoryRecord]] = [:]
    /// The height the records describe.
    var flushedHeight: Height?
    var nextOverlayID: UInt64
    /// The latest checkpoint's manifest, whose file hashes the next checkpoint reuses.
    var previousManifest: Manifest?
    /// The checkpoint whose files records point into (besides tip/); never garbage collected.
    var baseCheckpoint: Height?
    /// The reused chunk the next checkpoint's re-verification starts from.
    var reverificationStart: ReverificationCursor?

    init(nextOverlayID: UInt64) { self.nextOverlayID = nextOverlayID }

    mutating func takeOverlayID() -> UInt64 {
        defer { nextOverlayID += 1 }
        return nextOverlayID
    }
}
