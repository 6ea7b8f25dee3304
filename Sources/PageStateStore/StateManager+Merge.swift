import PageStateKernel
import PageStateMemory
import SystemPackage

extension StateManager {
    /// Merges overlays until every memory's files form a pyramid (each at least as large as all
    /// newer ones together). What every height reads is unchanged: a merged file holds the newest
    /// version of each page of the files it replaces. Sources that the last checkpoint holds are
    /// checked against its manifest first, so that a merge never carries damage into a new file.
    ///
    /// - Throws: `.hashMismatch` naming a damaged source and offset (nothing is merged then); `.system`.
    public func merge() throws(StoreError) {
        try tip.withLock { (tip) throws(StoreError) in try merge(&tip) }
    }

    func merge(_ tip: inout Tip) throws(StoreError) {
        for guest in tip.records.keys.sorted() {
            for name in tip.records[guest]!.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                while let range = MergePolicy.filesToMerge(sizes: tip.records[guest]![name]!.overlays.map(\.storedPages)) {
                    let sources = Array(tip.records[guest]![name]!.overlays[range])
                    try verifySources(sources, previous: tip.previousManifest)
                    let merged = try mergeFiles(sources, id: tip.takeOverlayID())
                    let replaced = tip.records[guest]![name]!.overlays[range]
                    tip.records[guest]![name]!.overlays.replaceSubrange(range, with: [merged])
                    for reference in replaced where reference.path.removingLastComponent() == layout.tip {
                        try? removeFileEntry(reference.path)
                    }
                }
            }
        }
    }

    /// Checks every byte of the sources that the last checkpoint holds against its manifest: a merged
    /// file is hashed from the bytes it copies, so a damaged source would otherwise pass into a file
    /// whose hashes match the damage. (Sources written since were hashed as they were written.)
    ///
    /// - Throws: `.hashMismatch` naming the file and offset, `.malformedFile`, `.missingFile`, `.system`.
    /// - Complexity: O(bytes of those sources).
    private func verifySources(_ references: [OverlayReference], previous: Manifest?) throws(StoreError) {
        for reference in references where reference.entry == nil {
            if let entry = previous?.file(named: StateDirectory.overlayName(reference.id)) {
                try FileHashing.verify(path: reference.path, against: entry)
            }
        }
    }

    /// Writes one overlay holding the newest version of every page of `references` (oldest first).
    ///
    /// - Complexity: O(pages × log files).
    private func mergeFiles(_ references: [OverlayReference], id: UInt64) throws(StoreError) -> OverlayReference {
        var layers: [OverlayLayer] = []
        for reference in references { layers.append(try OverlayLayer(path: reference.path)) }
        let merged = PageMap(allocator: allocator, layers: layers)
        let indices = merged.presentIndices
        let path = layout.tip.appending(StateDirectory.overlayName(id))
        let entry = try OverlayFile.write(pages: indices, of: merged, to: path, writer: writer)
        step(.mergeWritten)
        return OverlayReference(id: id, path: path, storedPages: UInt64(indices.count), entry: entry)
    }
}
