import PageStateMemory
import Synchronization

/// One guest's persistent memories as the host holds them, and the lock that serializes its
/// executions. The execution layer reads and writes the memories directly between executions
/// (installing code, loading a checkpoint); executors keep their mappings in step.
public final class Guest: Sendable {
    public let id: UInt64
    public let heapCapacityInPages: UInt64
    public let stableCapacityInPages: UInt64
    private let memories: Mutex<Memories>
    private let executions = Mutex(())

    struct Memories {
        var heap: PageMap
        var stable: PageMap
        /// Sealed result files of sandboxed updates whose pages the memories may still hold, oldest first.
        var resultFiles: [WeakAllocator] = []
    }

    struct WeakAllocator {
        weak var allocator: PageAllocator?
    }

    /// A guest with `heap` and `stable` (their sizes must be within the capacities).
    public init(id: UInt64, heap: PageMap, heapCapacityInPages: UInt64, stable: PageMap, stableCapacityInPages: UInt64) {
        precondition(heap.sizeInPages <= heapCapacityInPages && stable.sizeInPages <= stableCapacityInPages,
                     "memories must fit their capacities")
        self.id = id
        self.heapCapacityInPages = heapCapacityInPages
        self.stableCapacityInPages = stableCapacityInPages
        memories = Mutex(Memories(heap: heap, stable: stable))
    }

    /// A guest with empty memories in a new allocator of its own.
    public convenience init(id: UInt64, heapCapacityInPages: UInt64, stableCapacityInPages: UInt64) throws(PageAllocatorError) {
        let allocator = try PageAllocator(options: .init(backing: .memfd(name: "pagestate-guest-\(id)")))
        self.init(id: id, heap: PageMap(allocator: allocator), heapCapacityInPages: heapCapacityInPages,
                  stable: PageMap(allocator: allocator), stableCapacityInPages: stableCapacityInPages)
    }

    /// The current heap version (a snapshot: later executions do not change it).
    public var heap: PageMap { memories.withLock { $0.heap } }
    /// The current stable-memory version.
    public var stable: PageMap { memories.withLock { $0.stable } }

    /// Changes the memories outside any execution (for example writes by the execution layer).
    /// Waits for a running execution of this guest to finish.
    public func modify<R>(_ body: (inout PageMap, inout PageMap) throws -> R) rethrows -> R {
        try executions.withLock { _ in
            try memories.withLock { memories in try body(&memories.heap, &memories.stable) }
        }
    }

    /// Runs `body` with no other execution of this guest running.
    func serialized<R: Sendable>(_ body: () throws(ExecutionError) -> R) throws(ExecutionError) -> R {
        try executions.withLock { (_) throws(ExecutionError) -> R in try body() }
    }

    /// The versions an execution starts from.
    var versions: (heap: PageMap, stable: PageMap) { memories.withLock { ($0.heap, $0.stable) } }

    /// Adopts an update's results: sizes first, then the changed pages, and returns the versions that
    /// makes (what the executor's mapping now shows; a compaction may follow). `resultFile` is the sealed
    /// file a sandboxed update's pages live in; once more than `maximumResultFiles` such files hold
    /// pages of the memories, the pages of all but the newest quarter are copied into the guest's
    /// own allocator (a worker holds one descriptor per file, and descriptors are limited).
    ///
    /// - Complexity: O(changed pages); a compaction, once per `3/4 × maximumResultFiles` adoptions
    ///   at most, adds O(delta pages) plus one copy per page moved.
    func adopt(heapSize: UInt64, stableSize: UInt64, heapChanges: PageDelta, stableChanges: PageDelta,
               resultFile: PageAllocator? = nil, maximumResultFiles: Int = .max) -> (PageMap, PageMap) {
        memories.withLock { memories in
            memories.heap.grow(toPages: heapSize)
            memories.heap.apply(heapChanges)
            memories.stable.grow(toPages: stableSize)
            memories.stable.apply(stableChanges)
            let adopted = (memories.heap, memories.stable)
            if let resultFile {
                memories.resultFiles.removeAll { $0.allocator == nil }
                memories.resultFiles.append(WeakAllocator(allocator: resultFile))
                if memories.resultFiles.count > maximumResultFiles { Self.compact(&memories, keepingNewest: maximumResultFiles / 4) }
            }
            return adopted
        }
    }

    /// Moves the pages of all but the newest `keep` result files into the memories' own allocators.
    /// On failure (the allocator cannot grow) the memories stay as they are, still correct.
    private static func compact(_ memories: inout Memories, keepingNewest keep: Int) {
        let folded = Set(memories.resultFiles.dropLast(keep).compactMap { $0.allocator.map(ObjectIdentifier.init) })
        func moved(_ map: PageMap) throws(PageAllocatorError) -> PageDelta {
            var pages: [(index: PageIndex, page: Page)] = []
            for (index, page) in map.delta where folded.contains(ObjectIdentifier(page.allocator)) {
                pages.append((index, try page.withUnsafeBytes { (bytes) throws(PageAllocatorError) in try map.allocator.allocate(copying: bytes) }))
            }
            return PageDelta(pages)
        }
        do throws(PageAllocatorError) {
            let (heap, stable) = (try moved(memories.heap), try moved(memories.stable))
            memories.heap.apply(heap)
            memories.stable.apply(stable)
            memories.resultFiles.removeFirst(memories.resultFiles.count - keep)
        } catch {
            return
        }
    }
}

/// The pages all guests may still grow by (the Internet Computer's subnet available memory). Each
/// execution is handed an allowance out of it before it starts and the unused part is returned
/// afterwards, so growth is decided locally and deterministically.
public final class MemoryBudget: Sendable {
    private let available: Mutex<UInt64>

    public init(pages: UInt64) { available = Mutex(pages) }

    public var availablePages: UInt64 { available.withLock { $0 } }

    /// Takes up to `pages` out of the budget and returns how many were granted.
    func reserve(_ pages: UInt64) -> UInt64 {
        available.withLock { available in
            let granted = min(pages, available)
            available -= granted
            return granted
        }
    }

    /// Returns the unused part of a grant.
    func settle(granted: UInt64, used: UInt64) {
        available.withLock { $0 += granted - min(used, granted) }
    }
}

/// Runs guests' entry points: sandboxed (`SandboxPool`) or in-process (`InProcessExecutor`), with
/// identical results for deterministic guests.
public protocol GuestExecutor: Sendable {
    /// Runs one execution of `guest`; an update's changes are adopted into the guest only when it
    /// succeeds. Executions of one guest are serialized; different guests run in parallel.
    func execute(_ guest: Guest, _ request: ExecutionRequest) throws(ExecutionError) -> ExecutionOutcome
}
