import Foundation
import PageState
import PageStateWorkloads
import SystemPackage
import Testing

/// The default worker, built beside the test bundle.
let workerExecutable: FilePath = {
    let directory = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        .deletingLastPathComponent()
    return FilePath(directory.appendingPathComponent("pagestate-worker").path)
}()

/// The default worker's entry points, for in-process runs.
let demoRuntime: WorkerRuntime = {
    var runtime = WorkerRuntime()
    DemoEntryPoints.register(in: &runtime)
    return runtime
}()

/// A pool of the default worker with limits small enough for tests.
func makePool(budget: MemoryBudget = MemoryBudget(pages: 1 << 20), configure: (inout SandboxConfiguration) -> Void = { _ in },
              hostCall: @escaping HostCallHandler = { _, bytes in bytes.reversed() }) -> SandboxPool {
    var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
    configuration.executionTimeout = .seconds(10)
    configuration.workerAddressSpaceBytes = 4 << 30
    configure(&configuration)
    return SandboxPool(configuration: configuration, budget: budget, hostCall: hostCall)
}

func request(_ entryPoint: String, _ input: [UInt8] = [], kind: ExecutionKind = .update, guest: UInt64 = 1,
             allowance: UInt64 = 1 << 16) -> ExecutionRequest {
    ExecutionRequest(entryPoint: entryPoint, input: input, kind: kind, system: SystemData(guestID: guest, caller: 7, height: 3, time: 11),
                     memoryAllowancePages: allowance)
}

/// A `pages.write` update: `count` seeded random pages of a heap of `heapPages`, allowed to grow it whole.
func pagesWrite(_ count: Int, seed: UInt64, heapPages: UInt64) -> ExecutionRequest {
    var write = request("pages.write", DemoBytes.u32(UInt32(count)) + DemoBytes.u64(seed) + DemoBytes.u64(heapPages),
                        allowance: heapPages)
    write.dirtyPageLimit = heapPages
    return write
}

/// Two guests with the same capacities: one for a pool, one for the in-process reference.
func twinGuests(heapPages: UInt64) throws -> (Guest, Guest) {
    (try Guest(id: 1, heapCapacityInPages: heapPages, stableCapacityInPages: 16),
     try Guest(id: 1, heapCapacityInPages: heapPages, stableCapacityInPages: 16))
}

/// Runs `body` with a default pool, an in-process executor and twin guests of `heapPages` for
/// comparing the two; the pool is shut down afterwards.
func withPoolAndReference(heapPages: UInt64,
                          _ body: (SandboxPool, InProcessExecutor, (Guest, Guest)) throws -> Void) throws {
    let pool = makePool()
    defer { pool.shutDown() }
    try body(pool, InProcessExecutor(runtime: demoRuntime, budget: MemoryBudget(pages: 1 << 20)), try twinGuests(heapPages: heapPages))
}

/// The same execution sandboxed and in-process, on twin guests: outputs and heaps must agree.
func expectSameAsInProcess(_ pool: SandboxPool, _ local: InProcessExecutor, _ twins: (Guest, Guest),
                           _ execution: ExecutionRequest) throws {
    #expect(try pool.execute(twins.0, execution).output == (try local.execute(twins.1, execution)).output)
    #expect(firstDifference(twins.0.heap, twins.1.heap) == nil)
}

func u64(_ bytes: [UInt8]) -> UInt64 {
    bytes.count >= 8 ? bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } : 0
}

/// Every byte of a memory, for comparing versions.
func contents(_ map: PageMap) -> [UInt8] {
    (0..<map.sizeInPages).flatMap { map.page($0) }
}

/// The first byte offset where two memories differ (sizes included), or nil when they are equal.
/// (Comparing whole arrays with `#expect(==)` would make a failure's diff take minutes.)
func firstDifference(_ a: PageMap, _ b: PageMap) -> UInt64? {
    for page in 0..<max(a.sizeInPages, b.sizeInPages) {
        let left = page < a.sizeInPages ? a.page(page) : []
        let right = page < b.sizeInPages ? b.page(page) : []
        if left != right {
            return page * UInt64(Page.size) + UInt64(zip(left, right).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(left.count, right.count))
        }
    }
    return nil
}

func putInput(_ key: String, _ value: String) -> [UInt8] {
    let keyBytes = Array(key.utf8)
    return [UInt8(keyBytes.count & 0xff), UInt8(keyBytes.count >> 8)] + keyBytes + Array(value.utf8)
}

/// Both ways for the host to learn worker exits where the kernel offers both (`.pidfd` needs
/// PIDFD_INFO_EXIT, Linux 6.15+; where it is absent only `.launcher` is tested).
let exitReportings: [WorkerExitReporting] = KernelFeatures.pidfdExitStatusAvailable ? [.pidfd, .launcher] : [.launcher]

/// The fields of /proc/PID/stat after the command name, from field 3 (state) on.
func statFields(of process: ProcessID) throws -> [Substring] {
    let stat = try readProcFile(FilePath("/proc/\(process)/stat"))
    return stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
}

/// Polls `condition` every millisecond until it holds or 5 s pass; returns whether it held.
func waitUntil(_ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + .seconds(5)
    while !condition() && ContinuousClock.now < deadline { usleep(1_000) }
    return condition()
}
