import Glibc
import PageState
import PropertyChecking
import Testing

/// One step inside an execution against a tracked memory.
enum GuestStep: Sendable, CustomStringConvertible {
    case write(address: Int, count: Int, fill: UInt8)
    case grow(pages: Int)

    static let generator = zip(Gen.int(in: 0...9), Gen.int(in: 0...(48 * Page.size - 1)), Gen.int(in: 1...9000), Gen.int(in: 0...255))
        .map { kind, address, count, fill -> GuestStep in
            kind == 9 ? .grow(pages: 1 + count % 8) : .write(address: address, count: count, fill: UInt8(fill))
        }

    var description: String {
        switch self {
        case .write(let a, let c, let f): "write(\(a), \(c), fill \(f))"
        case .grow(let p): "grow(+\(p))"
        }
    }
}

/// An execution: its steps, and whether it ends in a commit, a rollback, or a trap (thrown error),
/// or runs as a query (undone afterwards; a deferred query is undone by whatever comes next).
struct GuestExecution: Sendable, CustomStringConvertible {
    enum Ending: Int, Sendable { case commit, rollback, trap, query, deferredQuery }
    var steps: [GuestStep]
    var ending: Ending
    static let generator = zip(GuestStep.generator.array(of: 0...12), Gen.int(in: 0...4))
        .map { GuestExecution(steps: $0, ending: Ending(rawValue: $1)!) }
    var description: String { "\(ending)(\(steps))" }
}

struct Trap: Error {}

/// Runs under every tracker this machine offers (`TrackerKind.available`): each must match the
/// model, so all trackers agree.
@Suite struct TrackedMemoryPropertyTests {
    static let capacity: UInt64 = 64

    @Test(.shrinking, arguments: TrackerKind.available)
    func reportsExactlyThePagesWrittenAndCommitsOrRollsBackToTheModel(tracker: TrackerKind) async throws {
        let pages = try TestPages()
        let (base, _) = try PageMapPropertyTests.makeBaseFile()
        await checkProperty(count: 100, input: PageWrite.generator.array(of: 0...10), GuestExecution.generator.array(of: 1...4)) {
            initialWrites, executions in
            let map = try MappedMemoryTests.makeMap(initialWrites, pages: pages, base: base)
            let tracked = try TrackedMemory(showing: map, capacityInPages: Self.capacity, tracker: tracker)
            var model = try map.read(at: 0, count: Int(map.sizeInPages) * Page.size)
            for execution in executions {
                var scratch = model
                var written = Set<PageIndex>()
                let run = { (memory: MappedMemory) throws in
                    for step in execution.steps {
                        switch step {
                        case .write(let address, let count, let fill):
                            let count = min(count, scratch.count - address)
                            guard address < scratch.count, count > 0 else { continue }
                            memory.bytes[address..<(address + count)].initializeMemory(as: UInt8.self, repeating: fill)
                            scratch.replaceSubrange(address..<(address + count), with: repeatElement(fill, count: count))
                            written.formUnion((address / Page.size...(address + count - 1) / Page.size).map(PageIndex.init))
                        case .grow(let extra):
                            let target = min(Self.capacity, memory.sizeInPages + UInt64(extra))
                            try tracked.grow(toPages: target)
                            scratch += [UInt8](repeating: 0, count: Int(target) * Page.size - scratch.count)
                        }
                    }
                    if execution.ending == .trap { throw Trap() }
                }
                let outcome = Result { () throws -> DirtyPages in
                    switch execution.ending {
                    case .query: try tracked.query(run)
                    case .deferredQuery: try tracked.startQuery(run)
                    default: return try tracked.execute(run).1
                    }
                    return DirtyPages()
                }
                switch (execution.ending, outcome) {
                case (.query, .success), (.deferredQuery, .success):
                    break
                case (.trap, .failure(let error)):
                    #expect(error is Trap)
                case (.commit, .success(let dirty)):
                    #expect(Set(dirty.indices) == written, "the dirty set must be exactly the pages written")
                    let committed = try tracked.commit(dirty)
                    #expect(firstDifference(try committed.read(at: 0, count: scratch.count), scratch) == nil)
                    model = scratch
                case (.rollback, .success(let dirty)):
                    #expect(Set(dirty.indices) == written, "the dirty set must be exactly the pages written")
                    try tracked.rollback(dirty)
                default:
                    Issue.record("unexpected outcome \(outcome) for \(execution.ending)")
                }
                // Growth is not undone by a rollback: the pages it added read as zeros.
                let size = Int(tracked.memory.sizeInPages) * Page.size
                model += [UInt8](repeating: 0, count: size - model.count)
                if execution.ending == .deferredQuery {
                    #expect(firstDifference(Array(tracked.memory.bytes), scratch + model.dropFirst(scratch.count)) == nil,
                            "an unfinished query's writes stay visible until it is finished")
                } else {
                    #expect(firstDifference(Array(tracked.memory.bytes), model) == nil, "the mapping must show the committed state")
                }
                #expect(firstDifference(try tracked.memory.shown.read(at: 0, count: size), model) == nil)
            }
            try tracked.finishQuery()
            #expect(firstDifference(Array(tracked.memory.bytes), model) == nil, "finishing the last query must undo its writes")
        }
    }
}

@Suite(.enabled(if: KernelFeatures.probe().asyncWriteTracking,
                "needs async userfaultfd write protection (Linux 6.7+ with WP_ASYNC, WP_UNPOPULATED and PAGEMAP_SCAN)"))
struct AsyncWriteProtectTrackerTests {
    /// Regression: regions that exactly fill the buffer came back with a stale `walk_end`, and
    /// resuming there reported 512 pages twice.
    @Test func regionsExactlyFillingTheBufferAreReportedOnce() throws {
        let pages = try TestPages()
        var map = PageMap(allocator: pages.allocator)
        map.grow(toPages: 16_384)
        let memory = try MappedMemory(showing: map, capacityInPages: 16_384)
        memory.bytes.initializeMemory(as: UInt8.self, repeating: 1)
        let tracker = try AsyncWriteProtectTracker(address: memory.address, pages: 16_384, scanBufferRegions: 4096)
        let written = Set((0..<4096).map { PageIndex(($0 * 7919) % 16_384) })
        for page in written { memory.bytes[Int(page) * Page.size] &+= 1 }
        let dirty = try tracker.collect()
        #expect(dirty.count == 4096)
        #expect(dirty.indices == written.sorted())
    }

    @Test func collectAndRearmResumeWhenTheBufferFills() throws {
        let pages = try TestPages()
        var map = PageMap(allocator: pages.allocator)
        map.grow(toPages: 256)
        let memory = try MappedMemory(showing: map, capacityInPages: 256)
        let tracker = try AsyncWriteProtectTracker(address: memory.address, pages: 256, scanBufferRegions: 3)
        let written = stride(from: 0, to: 256, by: 3).map(PageIndex.init)
        for index in written { memory.bytes[Int(index) * Page.size + 7] = 1 }
        let dirty = try tracker.collect()
        #expect(dirty.indices == written)
        #expect(try tracker.collect() == dirty, "collecting does not re-protect")
        try tracker.rearm(dirty)
        #expect(try tracker.collect().count == 0, "rearming re-protects every written page")
        memory.bytes[9 * Page.size] = 2
        #expect(try tracker.collect().indices == [9])
    }
}

extension AsyncWriteProtectTrackerTests {
    /// A collect skips its walk when the process took no page fault since every page was armed; a
    /// write of any kind still shows. Run in a helper process, which (unlike this test process,
    /// whose other threads fault all the time) stays quiet enough for the skips to happen.
    @Test(arguments: [PageFaultScope.process, .callingThread])
    func collectsSkipTheWalkOnlyWhenNothingCanHaveBeenWritten(faultScope: PageFaultScope) throws {
        let helper = try runTestHelper([faultScope == .process ? "tracked-writes" : "tracked-writes-one-thread"])
        #expect(helper.signal == nil, "\(helper.output)")
        let lines = helper.output.split(separator: "\n").map(String.init)
        let otherThread = faultScope == .process ? ["thread skipped=0 dirty=[7]"] : []
        #expect(lines == [
            "quiet skipped=1 dirty=[]",
            "own skipped=0 dirty=[3]",
            "again skipped=0 dirty=[3]",
            "quiet-after-rearm skipped=1 dirty=[]",
            "then-protect skipped=0 dirty=[2]",
            "syscall skipped=0 dirty=[5]",
            "count-after-write skipped=0 dirty=[4]",
            "count-before-write skipped=1 dirty=[]",
            "own-count-again skipped=0 dirty=[6]",
        ] + otherThread)
    }

    /// Regression: each tracker had a userfaultfd of its own, and a forked child still holding a
    /// copy of a dropped tracker's descriptor kept its registration alive, so the next tracker of
    /// the same pages failed with EBUSY (seen in CI, beside tests that spawn processes).
    @Test func aNewTrackerTakesOverPagesWhileAForkedChildHoldsTheOldDescriptor() throws {
        let helper = try runTestHelper(["retrack-beside-child"])
        #expect(helper.signal == nil)
        #expect(helper.output == "dirty=[5]\n")
    }

    /// Any set of written pages, any buffer size: collect and rearm resume until the walk ends.
    @Test(.shrinking)
    func collectFindsEveryWrittenPageWhateverTheBufferSize() async throws {
        let pages = try TestPages()
        var map = PageMap(allocator: pages.allocator)
        map.grow(toPages: 512)
        let memory = try MappedMemory(showing: map, capacityInPages: 512)
        memory.bytes.initializeMemory(as: UInt8.self, repeating: 1)  // populated pages, as after earlier executions
        await checkProperty(count: 100, input: Gen.int(in: 0...511).set(ofAtMost: 0...300), Gen.int(in: 1...5)) {
            written, bufferRegions in
            let tracker = try AsyncWriteProtectTracker(address: memory.address, pages: 512, scanBufferRegions: bufferRegions)
            for page in written { memory.bytes[page * Page.size] &+= 1 }
            let dirty = try tracker.collect()
            #expect(dirty.indices == written.sorted().map(PageIndex.init))
            #expect(dirty.count == written.count)
            try tracker.rearm(dirty)
            #expect(try tracker.collect().count == 0)
        }
    }
}

@Suite struct TrackerExampleTests {
    static func emptyMemory(pages: UInt64, tracker: TrackerKind) throws -> TrackedMemory {
        let testPages = try TestPages()
        var map = PageMap(allocator: testPages.allocator)
        map.grow(toPages: pages)
        return try TrackedMemory(showing: map, capacityInPages: pages, tracker: tracker)
    }

    @Test(arguments: TrackerKind.available)
    func dirtyPageLimitRollsBackAndThrows(tracker: TrackerKind) throws {
        let tracked = try Self.emptyMemory(pages: 16, tracker: tracker)
        #expect(throws: TrackingError.dirtyPageLimitExceeded(limit: 2, written: 3)) {
            try tracked.execute(dirtyPageLimit: 2) { memory in
                for page in 0..<3 { memory.bytes[page * Page.size] = 9 }
            }
        }
        #expect(tracked.memory.bytes.allSatisfy { $0 == 0 })
        let (_, dirty) = try tracked.execute(dirtyPageLimit: 2) { memory in memory.bytes[5 * Page.size] = 1 }
        #expect(dirty.indices == [5])
    }

    @Test(arguments: TrackerKind.available)
    func anExecutionMustBeSettledBeforeTheNext(tracker: TrackerKind) throws {
        let tracked = try Self.emptyMemory(pages: 4, tracker: tracker)
        let (_, dirty) = try tracked.execute { memory in memory.bytes[0] = 1 }
        #expect(throws: TrackingError.unsettledExecution) { try tracked.execute { _ in } }
        try tracked.rollback(dirty)
        #expect(try tracked.execute { _ in }.1.count == 0)
    }

    @Test(arguments: TrackerKind.available)
    func executionOnAnotherThreadIsTracked(tracker: TrackerKind) async throws {
        let tracked = try Self.emptyMemory(pages: 8, tracker: tracker)
        let dirty = try await Task.detached {
            try tracked.execute { memory in memory.bytes[3 * Page.size + 1] = 4 }.1
        }.value
        #expect(dirty.indices == [3])
        #expect(try tracked.commit(dirty).page(3)[1] == 4)
        #expect(tracked.trackerKind == tracker)
    }

    @Test(arguments: TrackerKind.available)
    func queriesSeeTheStateAndLeaveNoTrace(tracker: TrackerKind) throws {
        let tracked = try Self.emptyMemory(pages: 8, tracker: tracker)
        let (_, dirty) = try tracked.execute { memory in memory.bytes[Page.size] = 7 }
        try tracked.commit(dirty)
        let seen = try tracked.query { memory -> UInt8 in
            memory.bytes[2 * Page.size] = 5  // allowed, discarded
            return memory.bytes[Page.size]
        }
        #expect(seen == 7)
        #expect(tracked.memory.bytes[2 * Page.size] == 0)
        let (_, none) = try tracked.execute { _ in }
        #expect(none.count == 0, "a query leaves no dirty pages behind")
        try tracked.commit(none)
        #expect(tracked.memory.shown.page(2)[0] == 0)
    }

    /// A long-lived mapping follows versions produced elsewhere, replacing only the changed pages,
    /// and stays tracked.
    @Test(.shrinking, arguments: TrackerKind.available)
    func synchronizingRemapsOnlyChangedPages(tracker: TrackerKind) async throws {
        let pages = try TestPages()
        let (base, _) = try PageMapPropertyTests.makeBaseFile()
        await checkProperty(count: 40, input: PageWrite.generator.array(of: 0...10), PageWrite.generator.array(of: 0...10)) {
            first, second in
            let v1 = try MappedMemoryTests.makeMap(first, pages: pages, base: base)
            let tracked = try TrackedMemory(showing: v1, capacityInPages: 64, tracker: tracker)
            var v2 = v1
            for write in second { try v2.write([UInt8](repeating: write.fill, count: write.count), at: write.address) }
            let replaced = try tracked.synchronize(to: v2)
            #expect(firstDifference(Array(tracked.memory.bytes), try v2.read(at: 0, count: Int(v2.sizeInPages) * Page.size)) == nil)
            // Exactly the pages the second round of writes touched were replaced, no others.
            let touched = Set(second.flatMap { write in
                (Int(write.address) / Page.size...(Int(write.address) + write.count - 1) / Page.size).map(PageIndex.init)
            })
            #expect(replaced.indices == touched.sorted())
            // Still tracked: a write after synchronizing is reported and commits on top of v2.
            let (_, dirty) = try tracked.execute { memory in memory.bytes[0] &+= 1 }
            #expect(dirty.indices == [0])
            let v3 = try tracked.commit(dirty)
            #expect(try v3.read(at: 0, count: 1) == [try v2.read(at: 0, count: 1)[0] &+ 1])
        }
    }

    /// The default tracker is async write protection exactly when this process can really set one up.
    @Test func defaultTrackerIsTheBestThatWorksHere() throws {
        let pages = try TestPages()
        var map = PageMap(allocator: pages.allocator)
        map.grow(toPages: 4)
        let memory = try MappedMemory(showing: map, capacityInPages: 4)
        let asyncWorks: Bool
        do {
            _ = try AsyncWriteProtectTracker(address: memory.address, pages: 4)
            asyncWorks = true
        } catch TrackingError.unavailable {
            asyncWorks = false
        }
        #expect(TrackerKind.best == (asyncWorks ? .asyncWriteProtect : .protectionFaults))
        #expect(try TrackedMemory(showing: map, capacityInPages: 4).trackerKind == TrackerKind.best)
    }

    /// A fault outside every tracked region must end the process exactly as it would without
    /// PageState: the helper faults once with a tracker installed and once without.
    @Test func faultOutsideTrackedRegionsStillKillsTheProcess() throws {
        let withTracker = try runTestHelper(["fault-outside-tracked-region"])
        let without = try runTestHelper(["fault-without-tracker"])
        #expect(without.signal == SIGSEGV)
        #expect(withTracker.signal == without.signal)
        #expect(withTracker.output.contains("tracker installed"))
    }
}
