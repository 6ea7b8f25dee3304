import PageStateKernel
import PageStateMemory
import PageStateTracking

/// A guest's heap and stable memory mapped in this process (a worker, or the host when running
/// in-process), kept between executions, and the runs of executions against them. Updates are
/// tracked and left unsettled for the caller to commit (where the changed pages go differs between
/// the sandbox and in-process) or roll back; queries run on the same mappings and are undone.
///
/// `heapSize`/`stableSize` are the sizes the host's version has; the mappings may be larger.
final class GuestSession {
    let heap: TrackedMemory
    let stable: TrackedMemory
    private(set) var heapSize: UInt64
    private(set) var stableSize: UInt64
    /// Whose page faults the trackers count (`TrackedMemory.init`).
    private let faultScope: PageFaultScope

    /// An update that ran; its writes are neither committed nor rolled back yet.
    struct Update {
        var output: [UInt8]
        var heapDirty: DirtyPages
        var stableDirty: DirtyPages
        var heapSize: UInt64
        var stableSize: UInt64
        var grownPages: UInt64
        /// `ExecutionContext.reportedOffsetShift` as the entry point left it.
        var reportedOffsetShift: UInt64 = 0
    }

    /// Maps both memories (zero-copy) and starts tracking them; `faultScope` as in `TrackedMemory`.
    ///
    /// - Complexity: O(runs of the two memories).
    init(heap: PageMap, heapCapacity: UInt64, stable: PageMap, stableCapacity: UInt64, restoreThreads: Int,
         faultScope: PageFaultScope) throws(ExecutionError) {
        do {
            self.heap = try TrackedMemory(showing: heap, capacityInPages: heapCapacity, faultScope: faultScope)
            self.stable = try TrackedMemory(showing: stable, capacityInPages: stableCapacity, faultScope: faultScope)
        } catch {
            throw .workerFailure("mapping the guest's memories: \(error)")
        }
        self.faultScope = faultScope
        self.heap.restoreThreads = restoreThreads
        self.stable.restoreThreads = restoreThreads
        heapSize = heap.sizeInPages
        stableSize = stable.sizeInPages
    }

    /// Brings the mappings to later versions with the same layers, touching only changed pages;
    /// the sizes the guest sees become `heapSize` and `stableSize` (the host's).
    func synchronize(heap newHeap: PageMap, stable newStable: PageMap, heapSize: UInt64, stableSize: UInt64) throws(ExecutionError) {
        do {
            try heap.synchronize(to: newHeap)
            try stable.synchronize(to: newStable)
        } catch {
            throw .workerFailure("synchronizing the guest's memories: \(error)")
        }
        self.heapSize = heapSize
        self.stableSize = stableSize
    }

    /// Runs an update of `body`, tracked; the caller commits or rolls back the result.
    func runUpdate(_ body: EntryPoint, _ request: ExecutionRequest,
                   hostCall: @escaping ([UInt8]) throws(ExecutionError) -> [UInt8]) throws(ExecutionError) -> Update {
        let allowance = MemoryAllowance(pages: request.memoryAllowancePages)
        var sizes: (UInt64, UInt64) = (heapSize, stableSize)
        var reportedOffsetShift: UInt64 = 0
        let outcome: (([UInt8], DirtyPages), DirtyPages)
        do {
            outcome = try heap.execute { _ in
                try stable.execute { _ in
                    let context = makeContext(request, allowance, hostCall)
                    defer {
                        sizes = (context.heap.sizeInPages, context.stable.sizeInPages)
                        reportedOffsetShift = context.reportedOffsetShift
                    }
                    return try body(context)
                }
            }
        } catch {
            throw Self.executionError(error)
        }
        let ((output, stableDirty), heapDirty) = outcome
        let update = Update(output: output, heapDirty: heapDirty, stableDirty: stableDirty, heapSize: sizes.0,
                            stableSize: sizes.1, grownPages: allowance.grownPages, reportedOffsetShift: reportedOffsetShift)
        let written = UInt64(heapDirty.count + stableDirty.count)
        if written > request.dirtyPageLimit {
            try rollback(update)
            throw .dirtyPageLimitExceeded(limit: request.dirtyPageLimit, written: written)
        }
        return update
    }

    /// Makes an update's changed pages (captured by the caller) the memories' new versions.
    func commit(_ update: Update, heapChanges: PageDelta, stableChanges: PageDelta) throws(ExecutionError) {
        do {
            try heap.commit(update.heapDirty, adopting: heapChanges)
            try stable.commit(update.stableDirty, adopting: stableChanges)
        } catch {
            throw .workerFailure("committing: \(error)")
        }
        heapSize = update.heapSize
        stableSize = update.stableSize
    }

    func rollback(_ update: Update) throws(ExecutionError) {
        do {
            try heap.rollback(update.heapDirty)
            try stable.rollback(update.stableDirty)
        } catch {
            throw .workerFailure("rolling back: \(error)")
        }
    }

    /// Runs a query on the kept mappings; everything it wrote (or grew) is undone afterwards.
    func runQuery(_ body: EntryPoint, _ request: ExecutionRequest,
                  hostCall: @escaping ([UInt8]) throws(ExecutionError) -> [UInt8]) throws(ExecutionError) -> [UInt8] {
        let output = try startQuery(body, request, hostCall: hostCall)
        try finishQuery()
        return output
    }

    /// Runs a query on the kept mappings and leaves undoing its writes to `finishQuery()` (a worker
    /// sends the output first); the next execution or synchronization finishes it if no one did.
    func startQuery(_ body: EntryPoint, _ request: ExecutionRequest,
                    hostCall: @escaping ([UInt8]) throws(ExecutionError) -> [UInt8]) throws(ExecutionError) -> [UInt8] {
        let allowance = MemoryAllowance(pages: request.memoryAllowancePages)
        do {
            return try heap.startQuery { _ in
                try stable.startQuery { _ in
                    try body(makeContext(request, allowance, hostCall))
                }
            }
        } catch {
            throw Self.executionError(error)
        }
    }

    /// Undoes the writes of the query `startQuery` ran, if any.
    ///
    /// - Complexity: O(pages written) copies, plus one page-table scan per memory unless the process
    ///   took no page fault since the query started (`AsyncWriteProtectTracker`): one fault count
    ///   (~0.45 µs in a worker) serves both memories unless the heap had writes to undo (undoing
    ///   them writes no stable page, but its faults would make the stable tracker's mark stale).
    func finishQuery() throws(ExecutionError) {
        guard heap.queryUnfinished || stable.queryUnfinished else { return }
        do {
            let faults = heap.trackerKind == .asyncWriteProtect ? try pageFaults(of: faultScope) : nil
            let heapRestored = try heap.finishQuery(faultsAfterLastWrite: faults)
            try stable.finishQuery(faultsAfterLastWrite: heapRestored ? nil : faults)
        } catch {
            throw .workerFailure("undoing a query: \(error)")
        }
    }

    private func makeContext(_ request: ExecutionRequest, _ allowance: MemoryAllowance,
                             _ hostCall: @escaping ([UInt8]) throws(ExecutionError) -> [UInt8]) -> ExecutionContext {
        ExecutionContext(
            input: request.input, kind: request.kind, system: request.system,
            heap: GuestMemory(name: "heap", tracked: heap, sizeInPages: heapSize, allowance: allowance),
            stable: GuestMemory(name: "stable", tracked: stable, sizeInPages: stableSize, allowance: allowance),
            hostCall: hostCall)
    }

    /// The deterministic error a thrown error stands for.
    static func executionError(_ error: any Error) -> ExecutionError {
        switch error {
        case let error as ExecutionError: error
        case let trap as GuestTrap: trap.executionError
        case let error as TrackingError: .workerFailure("tracking: \(error)")
        default: .trapped(String(describing: error))
        }
    }
}
