import SystemPackage

/// A summary of a state directory, for `pagestate inspect` (read-only; reads STATE and MANIFEST only).
public enum StateInspector {
    public struct Checkpoint: Sendable, Codable {
        public var height: Height
        public var guests = 0
        public var memories = 0
        public var overlayFiles = 0
        /// Bytes of STATE and the overlays, as the manifest records them.
        public var bytes: UInt64 = 0
        /// The most overlays any one memory has.
        public var maxOverlaysPerMemory = 0
        public var rootHash: String?
        /// Why the checkpoint could not be read, if it could not.
        public var error: String?
    }

    public struct Summary: Sendable, Codable {
        public var directory: String
        public var checkpoints: [Checkpoint]
        /// Overlays flushed since the last checkpoint (present while a manager runs).
        public var tipFiles: Int
        public var scratchEntries: Int
    }

    /// - Complexity: O(size of every checkpoint's STATE and MANIFEST).
    public static func inspect(directory: FilePath) throws(StoreError) -> Summary {
        let layout = StateDirectory(root: directory)
        var checkpoints: [Checkpoint] = []
        for height in try layout.checkpointHeights() {
            var summary = Checkpoint(height: height)
            do throws(StoreError) {
                let reader = try CheckpointReader(layout: layout, height: height)
                summary.guests = reader.state.guests.count
                summary.memories = reader.state.guests.reduce(0) { $0 + $1.memories.count }
                summary.overlayFiles = reader.state.overlayIDs.count
                summary.bytes = reader.manifest.files.reduce(0) { $0 + $1.size }
                summary.maxOverlaysPerMemory = reader.state.guests.flatMap { $0.memories.map(\.overlays.count) }.max() ?? 0
                summary.rootHash = reader.manifest.rootHash.description
            } catch {
                summary.error = error.description
            }
            checkpoints.append(summary)
        }
        return Summary(directory: directory.string, checkpoints: checkpoints,
                       tipFiles: (try? layout.entries(of: layout.tip).count) ?? 0,
                       scratchEntries: (try? layout.entries(of: layout.scratch).count) ?? 0)
    }
}
