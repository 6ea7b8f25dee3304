import PageStateMemory
import SystemPackage

/// Read-only checks of a state directory's checkpoints, for `pagestate verify` (safe while a
/// manager uses the directory: checkpoints are immutable once published).
public enum StateVerifier {
    /// The outcome for one checkpoint.
    public struct Result: Sendable, Hashable {
        public var height: Height
        /// The root hash, when the checkpoint is intact.
        public var rootHash: ContentHash?
        /// What is damaged, naming the file (and offset where known); nil when intact.
        public var error: StoreError?
    }

    /// Checks every checkpoint in `directory`, oldest first: every byte of every file against its
    /// manifest, the overlays' structure, and the manifest's memory hashes against the contents the
    /// files hold — so the root hash is re-derived from the bytes.
    ///
    /// - Complexity: O(bytes).
    public static func verify(directory: FilePath) throws(StoreError) -> [Result] {
        let layout = StateDirectory(root: directory)
        let allocator: PageAllocator
        do { allocator = try PageAllocator() } catch { throw .allocator(error) }
        return try layout.checkpointHeights().map { height in
            do throws(StoreError) {
                return Result(height: height, rootHash: try verify(layout: layout, height: height, allocator: allocator), error: nil)
            } catch {
                return Result(height: height, rootHash: nil, error: error)
            }
        }
    }

    private static func verify(layout: StateDirectory, height: Height, allocator: PageAllocator) throws(StoreError) -> ContentHash {
        let reader = try CheckpointReader(layout: layout, height: height)
        let (state, _) = try reader.load(allocator: allocator, verification: .full, pin: nil)
        let extra = try layout.entries(of: reader.directory).filter { reader.manifest.file(named: $0) == nil && $0 != Manifest.name }
        if let name = extra.first {
            throw .malformedFile(path: reader.directory.appending(name).string, offset: 0, reason: "file not listed in the manifest")
        }
        guard state.manifestGuests() == reader.manifest.guests else {
            throw .hashMismatch(path: reader.directory.appending(Manifest.name).string, offset: 0)
        }
        return reader.manifest.rootHash
    }
}
