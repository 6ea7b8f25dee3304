import PageStateKernel
import PageStateMemory

/// A mapped guest memory whose executions are tracked, then committed or rolled back.
///
/// An execution runs against `memory`; afterwards the tracker says exactly which pages it wrote.
/// `commit` turns them into a new version of the memory; `rollback` returns the mapping to the
/// version before the execution. Both cost O(pages written), never O(memory size).
///
/// Every execution must be settled — committed or rolled back — before the next one starts; until
/// then its pages stay writable and untracked, which is what lets both copy without faulting.
/// Not for concurrent use: one execution at a time. The execution itself may run on any thread.
public final class TrackedMemory: @unchecked Sendable {
    public let memory: MappedMemory
    /// The mechanism in use.
    public let trackerKind: TrackerKind
    private let tracker: any DirtyPageTracker
    /// Threads a large rollback may use; 1 in a process that must not start threads (a sandbox worker).
    public var restoreThreads = MappedMemory.copyThreads
    /// The dirty pages of the execution not yet committed or rolled back.
    private var unsettled: DirtyPages?
    /// Whether a query `startQuery` ran still has to be undone.
    public private(set) var queryUnfinished = false

    /// Maps `map` into a reservation of `capacityInPages` and starts tracking it with `tracker`
    /// (by default the best this machine offers). `faultScope: .callingThread` makes skipped walks
    /// cheaper where no other thread ever touches the memory (`AsyncWriteProtectTracker.init`).
    public init(showing map: PageMap, capacityInPages: UInt64, tracker: TrackerKind = .best,
                faultScope: PageFaultScope = .process) throws {
        memory = try MappedMemory(showing: map, capacityInPages: capacityInPages)
        trackerKind = tracker
        self.tracker = try tracker.makeTracker(address: memory.address, pages: memory.sizeInPages,
                                               capacity: capacityInPages, faultScope: faultScope)
    }

    /// Runs `body` against the memory and returns its result with the pages it wrote. When `body`
    /// throws, or writes more than `dirtyPageLimit` pages, its writes are rolled back and the error
    /// (`TrackingError.dirtyPageLimitExceeded` for the limit) is thrown.
    public func execute<R>(dirtyPageLimit: Int = .max, _ body: (MappedMemory) throws -> R) throws -> (R, DirtyPages) {
        let result = try run(body)
        let dirty = try tracker.collect()
        unsettled = dirty
        if dirty.count > dirtyPageLimit {
            try rollback(dirty)
            throw TrackingError.dirtyPageLimitExceeded(limit: dirtyPageLimit, written: dirty.count)
        }
        return (result, dirty)
    }

    /// Runs read-only-by-contract code (a query) against the current version and leaves no trace:
    /// it may write (and grow), and whatever it wrote is restored from the shown version afterwards.
    /// Nothing is armed for it and nothing is recorded or committed: the write protection left by
    /// the last settle tells which pages to restore. A throwaway private mapping would cost one
    /// `mmap` per file run — after many commits, one per page: ~90 ms for a 64 MiB memory.
    ///
    /// - Complexity: O(pages written) copies, plus the tracker's scans (page-table walks).
    public func query<R>(_ body: (MappedMemory) throws -> R) throws -> R {
        let result = try startQuery(body)
        try finishQuery()
        return result
    }

    /// Runs a query like `query` but leaves its undo (the scan and the restores) to `finishQuery()`,
    /// so that a caller can hand the result on first. Until it is finished the memory shows the
    /// query's writes; `execute`, `synchronize`, `grow` and the next query finish it first. A query
    /// that throws is undone before the error is rethrown.
    ///
    /// - Complexity: that of `body`.
    public func startQuery<R>(_ body: (MappedMemory) throws -> R) throws -> R {
        let result = try run(body)
        queryUnfinished = true
        return result
    }

    /// Runs `body` once the previous execution is settled and any query finished; when it throws,
    /// its writes are rolled back before the error is rethrown.
    private func run<R>(_ body: (MappedMemory) throws -> R) throws -> R {
        try finishQuery()
        guard unsettled == nil else { throw TrackingError.unsettledExecution }
        do {
            return try body(memory)
        } catch {
            try rollback(try tracker.collect())
            throw error
        }
    }

    /// Undoes the writes of the query `startQuery` ran, if one is unfinished, and returns whether
    /// it wrote any page (restoring them may fault). When this throws the query stays unfinished
    /// (the next call tries again). `faultsAfterLastWrite`: as in
    /// `DirtyPageTracker.collect(faultsAfterLastWrite:)`.
    ///
    /// - Complexity: O(pages written) copies, plus the tracker's scans (page-table walks).
    @discardableResult
    public func finishQuery(faultsAfterLastWrite: UInt64? = nil) throws -> Bool {
        guard queryUnfinished else { return false }
        let written = try tracker.collect(faultsAfterLastWrite: faultsAfterLastWrite)
        try rollback(written)
        queryUnfinished = false
        return written.count > 0
    }

    /// Makes an execution's writes the new version of the memory and returns it.
    ///
    /// - Complexity: O(pages written).
    @discardableResult
    public func commit(_ dirty: DirtyPages) throws -> PageMap {
        try commit(dirty, adopting: try memory.capture(dirty))
    }

    /// Makes an execution's writes the new version of the memory, with its changed pages already
    /// captured elsewhere (a sandbox worker captures them into a sealed file): `changed` must hold
    /// exactly the dirty pages whose bytes differ from the shown version, with the mapping's bytes.
    ///
    /// - Complexity: O(pages written).
    @discardableResult
    public func commit(_ dirty: DirtyPages, adopting changed: PageDelta) throws -> PageMap {
        memory.adopt(changed)
        if dirty.count > 0 { try tracker.rearm(dirty) }  // nothing written: everything is still armed
        unsettled = nil
        return memory.shown
    }

    /// Undoes an execution's writes.
    ///
    /// - Complexity: O(pages written) copies, plus one re-arming walk of the page tables.
    public func rollback(_ dirty: DirtyPages) throws(TrackingError) {
        memory.restore(dirty, threads: restoreThreads)
        if dirty.count > 0 { try tracker.rearm(dirty) }
        unsettled = nil
    }

    /// Brings the memory to `newer`, a later version produced elsewhere (say, by another worker),
    /// remapping only the pages that differ and tracking them again. The current execution, if
    /// any, must be settled first.
    ///
    /// Returns the pages replaced.
    ///
    /// - Complexity: O(pages changed), not O(memory size).
    @discardableResult
    public func synchronize(to newer: PageMap) throws -> DirtyPages {
        try finishQuery()
        guard unsettled == nil else { throw TrackingError.unsettledExecution }
        let old = memory.sizeInPages
        let replaced = try memory.synchronize(to: newer)
        try tracker.protect(old..<memory.sizeInPages)
        for run in replaced.runs { try tracker.protect(run) }
        return replaced
    }

    /// Grows the accessible memory (like Wasm `memory.grow`); new pages are tracked.
    public func grow(toPages pages: UInt64) throws {
        try finishQuery()
        let old = memory.sizeInPages
        try memory.grow(toPages: pages)
        try tracker.protect(old..<memory.sizeInPages)
    }
}
