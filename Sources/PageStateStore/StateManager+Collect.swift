import PageStateKernel
import SystemPackage

extension StateManager {
    /// Deletes every checkpoint but the newest `keepLast`, except checkpoints a loaded state still
    /// maps and the one the tip's files come from. Returns the deleted heights.
    @discardableResult
    public func collectGarbage(keepLast: Int) throws(StoreError) -> [Height] {
        try tip.withLock { (tip) throws(StoreError) -> [Height] in
            let heights = try layout.checkpointHeights()
            var deleted: [Height] = []
            for height in heights.dropLast(max(keepLast, 0)) where !pins.isPinned(height) && height != tip.baseCheckpoint {
                try delete(height, tip: &tip)
                deleted.append(height)
            }
            return deleted
        }
    }

    /// Deletes checkpoint `height`.
    ///
    /// - Throws: `.checkpointInUse` when a loaded state maps it or the tip's files come from it; `.noSuchCheckpoint`.
    public func deleteCheckpoint(height: Height) throws(StoreError) {
        try tip.withLock { (tip) throws(StoreError) in
            guard try layout.checkpointHeights().contains(height) else { throw .noSuchCheckpoint(height) }
            guard !pins.isPinned(height), height != tip.baseCheckpoint else { throw .checkpointInUse(height) }
            try delete(height, tip: &tip)
        }
    }

    /// Renames the checkpoint out of checkpoints/ first (atomic), then removes it: a crash midway
    /// leaves no half-deleted checkpoint, only scratch to clean.
    private func delete(_ height: Height, tip: inout Tip) throws(StoreError) {
        let doomed = layout.scratch.appending("deleted-\(StateDirectory.name(of: height))")
        if (try? layout.entries(of: doomed)) != nil { try layout.removeTree(doomed) }
        try system("rename", layout.checkpoint(height)) { try renameEntry(layout.checkpoint(height), to: doomed) }
        try layout.sync(layout.checkpoints, writer: writer)
        try layout.removeTree(doomed)
        if tip.previousManifest?.height == height { tip.previousManifest = nil }
        step(.checkpointDeleted)
    }
}
