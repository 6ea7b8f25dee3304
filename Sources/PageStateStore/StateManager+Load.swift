import PageStateMemory

extension StateManager {
    /// Loads checkpoint `height` (the newest when nil) and makes it the tip: commits continue above
    /// it, and flushes write only what later commits change. Memories map the checkpoint's overlay
    /// files zero-copy; nothing is read but STATE, MANIFEST and the overlays' indices (see `Verification`).
    ///
    /// A directory without checkpoints loads as the empty state at height 0 (when `height` is nil).
    ///
    /// - Parameter fallBackToIntact: when the checkpoint fails to load, try older ones, newest first;
    ///   the failures are listed in `Loaded.skipped`.
    /// - Throws: `.noSuchCheckpoint`; the typed error naming the damaged file and offset; with
    ///   `fallBackToIntact`, `.noIntactCheckpoint` listing every failure.
    /// - Complexity: O(files) with `.structure`; O(bytes) with `.full`.
    public func load(height: Height? = nil, verification: Verification = .structure, fallBackToIntact: Bool = false) throws(StoreError) -> Loaded {
        try tip.withLock { (tip) throws(StoreError) -> Loaded in
            let heights = try layout.checkpointHeights()
            guard let target = height ?? heights.last else {
                reset(&tip, commits: [0: ReplicatedState()], latest: 0, records: [:], manifest: nil, base: nil)
                return Loaded(height: 0, state: ReplicatedState(), rootHash: nil, skipped: [])
            }
            guard heights.contains(target) else { throw .noSuchCheckpoint(target) }
            var skipped: [StoreError] = []
            for candidate in heights.filter({ $0 <= target }).reversed() {
                do throws(StoreError) {
                    let reader = try CheckpointReader(layout: layout, height: candidate)
                    let (state, layers) = try reader.load(allocator: allocator, verification: verification, pin: pins.pin(candidate))
                    var records: [GuestID: [String: MemoryRecord]] = [:]
                    for (guest, hashes) in zip(reader.state.guests, reader.manifest.guests) {
                        for (memory, memoryHashes) in zip(guest.memories, hashes.memories) {
                            let memoryLayers = layers[guest.id]![memory.name]!
                            records[guest.id, default: [:]][memory.name] = MemoryRecord(
                                layers: memoryLayers, delta: PageDelta(), sizeInPages: memory.sizeInPages,
                                overlays: zip(memory.overlays, memoryLayers).map {
                                    OverlayReference(id: $0.0, path: reader.path(ofOverlay: $0.0), storedPages: $0.1.storedPages)
                                },
                                chunks: memoryHashes.chunks)
                        }
                    }
                    reset(&tip, commits: [candidate: state], latest: candidate, records: records, manifest: reader.manifest, base: candidate)
                    return Loaded(height: candidate, state: state, rootHash: reader.manifest.rootHash, skipped: skipped)
                } catch {
                    guard fallBackToIntact else { throw error }
                    skipped.append(error)
                }
            }
            throw .noIntactCheckpoint(skipped)
        }
    }

    private func reset(_ tip: inout Tip, commits states: [Height: ReplicatedState], latest: Height,
                       records: [GuestID: [String: MemoryRecord]], manifest: Manifest?, base: Height?) {
        tip.records = records
        tip.flushedHeight = latest
        tip.previousManifest = manifest
        tip.baseCheckpoint = base
        commits.withLock { commits in
            commits.states = states
            commits.latest = latest
            commits.backgroundError = nil
        }
    }
}
