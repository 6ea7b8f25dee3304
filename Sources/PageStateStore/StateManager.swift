import Dispatch
import PageStateKernel
import PageStateMemory
import Synchronization
import SystemPackage

/// Keeps versions of the replicated state: commits heights in memory, flushes them to overlay files
/// in the background, makes durable checkpoints, loads them back, merges overlays and collects
/// garbage (design/state-manager.md).
///
/// Thread-safe. Commits only take a short lock, so flushing, merging and checkpointing — which run
/// one at a time — never block them.
public final class StateManager: Sendable {
    public struct Options: Sendable {
        /// Where written pages are allocated, for loaded states and their writes; nil creates a memfd allocator.
        public var allocator: PageAllocator?
        /// How files are written; nil picks io_uring when available, else pwrite.
        public var writer: (any FileWriter)?
        /// Flush every commit to overlay files on a background queue.
        public var flushInBackground = true
        /// Merge overlays after flushes to keep each memory's file count logarithmic.
        public var mergeAfterFlush = true
        /// How much of the files a checkpoint reuses from the previous one it reads back and checks
        /// against their recorded hashes, as a fraction of the bytes it writes: each checkpoint
        /// re-verifies about `reverifyFraction` × (bytes of its new overlays) plus one 1 MiB chunk,
        /// continuing where the previous one stopped, so a damaged reused file fails a checkpoint
        /// within about (reused bytes / re-verified bytes per checkpoint) checkpoints. 0 turns
        /// re-verification off; `.infinity` checks every reused chunk at every checkpoint.
        public var reverifyFraction = 0.25
        /// Called at every step of writing and publishing files, for crash-injection tests and tracing.
        public var onStep: (@Sendable (Step) -> Void)?

        public init() {}
    }

    /// A point in the life of files, reported to `Options.onStep`.
    public enum Step: String, Sendable, CaseIterable {
        case overlayWritten = "overlay written"
        case checkpointLinked = "checkpoint files linked"
        case stateWritten = "STATE written"
        case manifestWritten = "MANIFEST written"
        case checkpointSynced = "checkpoint directory synced"
        case checkpointRenamed = "checkpoint renamed into place"
        case checkpointPublished = "checkpoints directory synced"
        case mergeWritten = "merged overlay written"
        case checkpointDeleted = "checkpoint deleted"
    }

    /// What opening the directory cleaned up after an earlier crash.
    public struct Recovery: Sendable, Hashable {
        /// Leftover partial checkpoints and deletions removed from scratch/.
        public var removedScratchEntries: [String]
        /// Overlays flushed after the last checkpoint, removed from tip/.
        public var removedTipFiles: [String]
    }

    /// A completed checkpoint.
    public struct CheckpointInfo: Sendable, Hashable {
        public var height: Height
        public var rootHash: ContentHash
        /// Overlay files the checkpoint references.
        public var overlayFiles: Int
        /// Bytes of those overlay files.
        public var overlayBytes: UInt64
        /// Bytes of reused overlay files read back and found intact (`Options.reverifyFraction`).
        public var reverifiedBytes: UInt64
    }

    /// A state loaded from a checkpoint. Its memories map the checkpoint's files, which garbage
    /// collection keeps while any of those memories (or copies of them) are alive.
    public struct Loaded: Sendable {
        public var height: Height
        public var state: ReplicatedState
        /// The checkpoint's root hash; nil for the empty state of a directory without checkpoints.
        public var rootHash: ContentHash?
        /// Newer checkpoints that failed to load and were skipped (with `fallBackToIntact`).
        public var skipped: [StoreError]
    }

    public let directory: FilePath
    public let allocator: PageAllocator
    public let writer: any FileWriter
    /// What opening cleaned up.
    public let recovery: Recovery
    let layout: StateDirectory
    let options: Options
    let pins = CheckpointPins()
    /// Held for the manager's lifetime: no other manager opens the directory meanwhile.
    private let lock: DirectoryLock
    let background = DispatchQueue(label: "pagestate.state-manager")
    /// Commits and errors; locked briefly.
    let commits = Mutex(Commits())
    /// Files and flush records; locked for the whole of a flush, merge, checkpoint, load or deletion.
    let tip: Mutex<Tip>

    struct Commits {
        var states: [Height: ReplicatedState] = [:]
        var latest: Height?
        var backgroundError: StoreError?
        var flushScheduled = false
    }

    /// Opens (creating if needed) the state directory at `directory`, takes its lock and cleans up
    /// what a crash left behind: partial checkpoints in scratch/ and unreferenced overlays in tip/.
    ///
    /// - Throws: `StoreError.directoryLocked` when another manager uses it; `.system`.
    public init(directory: FilePath, options: Options = Options()) throws(StoreError) {
        self.directory = directory
        self.options = options
        let layout = StateDirectory(root: directory)
        self.layout = layout
        try layout.create()
        lock = try DirectoryLock(layout.lock, directory: directory)
        do throws(PageAllocatorError) {
            if let given = options.allocator { allocator = given } else { allocator = try PageAllocator() }
        } catch {
            throw .allocator(error)  // the lock is released with the partly initialized manager
        }
        let writer = options.writer ?? FileWriters.best()
        self.writer = writer
        let removedScratch = try layout.entries(of: layout.scratch)
        for entry in removedScratch { try layout.removeTree(layout.scratch.appending(entry)) }
        let removedTip = try layout.entries(of: layout.tip)
        for entry in removedTip { try layout.removeTree(layout.tip.appending(entry)) }
        try layout.sync(layout.scratch, writer: writer)
        try layout.sync(layout.tip, writer: writer)
        recovery = Recovery(removedScratchEntries: removedScratch, removedTipFiles: removedTip)
        var nextOverlay: UInt64 = 1
        for height in try layout.checkpointHeights() {
            for name in try layout.entries(of: layout.checkpoint(height)) {
                if let id = StateDirectory.overlayID(fromName: name) { nextOverlay = max(nextOverlay, id + 1) }
            }
        }
        tip = Mutex(Tip(nextOverlayID: nextOverlay))
    }

    /// Records `state` as height `height` (in memory) and schedules a background flush.
    ///
    /// - Throws: `.heightNotIncreasing`; `.invalidMemoryName`.
    /// - Complexity: O(1) plus scheduling.
    public func commit(height: Height, state: ReplicatedState) throws(StoreError) {
        try state.validateNames()
        let schedule = try commits.withLock { (commits) throws(StoreError) -> Bool in
            if let latest = commits.latest, height <= latest { throw .heightNotIncreasing(committed: height, latest: latest) }
            commits.states[height] = state
            commits.latest = height
            guard options.flushInBackground, !commits.flushScheduled else { return false }
            commits.flushScheduled = true
            return true
        }
        if schedule { background.async { self.flushLatestInBackground() } }
    }

    /// The latest committed (or loaded) height.
    public var latestHeight: Height? { commits.withLock { $0.latest } }

    /// The state committed at `height`, while it is kept (heights below the latest checkpoint are dropped).
    public func state(at height: Height) -> ReplicatedState? { commits.withLock { $0.states[height] } }

    /// Complete checkpoints, ascending.
    public func checkpointHeights() throws(StoreError) -> [Height] { try layout.checkpointHeights() }

    /// Waits until scheduled background flushes and merges have finished.
    public func waitForBackgroundWork() { background.sync {} }

    /// Reports a step to `Options.onStep`.
    func step(_ step: Step) { options.onStep?(step) }
}
