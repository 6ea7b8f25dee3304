import PageStateKernel
import PageStateMemory
import SystemPackage

extension StateManager {
    /// Flushes the latest committed height now (the background queue does this after commits).
    public func flush() throws(StoreError) {
        guard let (height, state) = commits.withLock({ commits in commits.latest.flatMap { h in commits.states[h].map { (h, $0) } } }) else { return }
        try tip.withLock { (tip) throws(StoreError) in
            try flush(&tip, to: state, height: height)
            if options.mergeAfterFlush { try merge(&tip) }
        }
    }

    /// The background job: flush (and merge) the latest commit; errors are kept for the next checkpoint.
    func flushLatestInBackground() {
        commits.withLock { $0.flushScheduled = false }
        do { try flush() } catch { commits.withLock { $0.backgroundError = error } }
    }

    /// Brings the files to `state`: for every memory, one overlay holding the pages that differ from
    /// what was last flushed (in either direction — a flush to an older height writes its pages back).
    /// A flush that fails removes the overlays it wrote and leaves the records as they were, except
    /// that memories it reached lose their cached hashes (the next checkpoint rehashes them).
    /// `pacing`, a checkpoint's re-verification, is allowed its share of each overlay before it is written.
    ///
    /// - Complexity: O(changed pages × log n) per memory whose layers are unchanged, plus merging its
    ///   dirty chunks into its manifest chunk list (O(chunks), while the write runs); a memory whose
    ///   layers changed (built elsewhere) or that shrank is rewritten whole.
    func flush(_ tip: inout Tip, to state: ReplicatedState, height: Height, pacing: FileReverification? = nil) throws(StoreError) {
        if tip.flushedHeight == height { return }
        var records: [GuestID: [String: MemoryRecord]] = [:]
        var created: [FilePath] = []  // removed again if the flush fails: their pages are written next time
        do throws(StoreError) {
            // In canonical order, so the same history gives the same overlay ids and files everywhere.
            for guest in state.guests.keys.sorted() {
                let memories = state.guests[guest]!.memories
                for name in memories.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                    records[guest, default: [:]][name] = try flush(memories[name]!, guest: guest, name: name, tip: &tip,
                                                                   created: &created, pacing: pacing)
                }
            }
        } catch {
            for path in created { try? removeFileEntry(path) }
            throw error
        }
        // Overlays in tip/ that no memory uses any more (its guest removed, or rewritten whole) go now.
        let kept = Set(records.values.flatMap { $0.values.flatMap { $0.overlays.map(\.id) } })
        for reference in tip.records.values.flatMap({ $0.values.flatMap(\.overlays) })
        where !kept.contains(reference.id) && reference.path.removingLastComponent() == layout.tip {
            try? removeFileEntry(reference.path)
        }
        tip.records = records
        tip.flushedHeight = height
    }

    /// The record of `memory` after writing the pages that differ from its flushed version (or all of
    /// them) to a new overlay in tip/, whose path is appended to `created`.
    private func flush(_ memory: PageMap, guest: GuestID, name: String, tip: inout Tip,
                       created: inout [FilePath], pacing: FileReverification?) throws(StoreError) -> MemoryRecord {
        var record: MemoryRecord
        let changed: [PageIndex]
        // Overlays only ever add pages to a memory's files: a memory that is smaller than what was
        // flushed (its guest removed and recreated, or a flush back to an older height) is rewritten
        // whole, since its old overlays hold pages beyond its new size.
        if let flushed = tip.records[guest]?[name], flushed.hasSameLayers(as: memory), memory.sizeInPages >= flushed.sizeInPages {
            changed = memory.delta.changedIndices(comparedTo: flushed.delta)
            record = flushed
            // The hash cache moves out of `tip`, so the flush updates it in place (a shared one would
            // be copied whole). A flush that fails leaves this memory with no cache and no chunk
            // hashes: the next checkpoint hashes it again, never anything stale.
            tip.records[guest]![name]!.hashes = PageHashCache()
            tip.records[guest]![name]!.chunks = nil
        } else {
            record = MemoryRecord(layers: [], delta: PageDelta(), sizeInPages: 0, overlays: [], chunks: nil)
            changed = memory.presentIndices
        }
        if !changed.isEmpty {
            let id = tip.takeOverlayID()
            let path = layout.tip.appending(StateDirectory.overlayName(id))
            pacing?.allow(bytes: UInt64(changed.count * Page.size))
            let entry = try OverlayFile.write(pages: changed, of: memory, to: path, writer: writer) {
                // While the pages go to the device: the manifest's chunk hashes, so that a checkpoint
                // finds them up to date.
                record.hashes.record(writing: changed, hashes: $0, of: memory)
                _ = record.updateChunks(of: memory)
            }
            created.append(path)
            step(.overlayWritten)
            record.overlays.append(OverlayReference(id: id, path: path, storedPages: UInt64(changed.count), entry: entry))
        }
        record.layers = memory.layers
        record.delta = memory.delta
        record.sizeInPages = memory.sizeInPages
        return record
    }
}
