import PageStateMemory
import PageStateSandbox
import PageStateWorkloads
import SystemPackage

/// `pagestate bench sandbox`: the same executions sandboxed and in-process, in one run: an update
/// writing 4,096 pages of a 64 MiB heap (commit included), a query, 8-byte stable-memory operations
/// inside the worker, a host-call round trip, and an idle worker's resident memory.
public enum SandboxSuite {
    static let heapPages: UInt64 = 16_384
    static let dirtyPages: UInt32 = 4096

    public static func run(worker: FilePath, repetitions: Int = 15) throws -> BenchReport {
        var report = BenchReport(suite: "sandbox")
        var runtime = WorkerRuntime()
        DemoEntryPoints.register(in: &runtime)
        let budget: UInt64 = 1 << 40
        let pool = SandboxPool(configuration: SandboxConfiguration(workerExecutable: worker), budget: MemoryBudget(pages: budget),
                               hostCall: { _, bytes in bytes })
        defer { pool.shutDown() }
        let local = InProcessExecutor(runtime: runtime, budget: MemoryBudget(pages: budget), hostCall: { _, bytes in bytes })
        let executors: [(String, any GuestExecutor)] = [("sandboxed", pool), ("inprocess", local)]
        var update: [String: Double] = [:]
        var guests: [String: Guest] = [:]
        for (name, executor) in executors {
            let guest = try Guest(id: 1, heapCapacityInPages: heapPages, stableCapacityInPages: 256)
            // Populate the whole heap once (and the key-value table) so updates overwrite existing pages.
            _ = try executor.execute(guest, writePages(Int(heapPages), seed: 1, allowance: heapPages))
            _ = try executor.execute(guest, ExecutionRequest(entryPoint: "kv.put", input: [1, 0, 0x6B, 0x76], kind: .update,
                                                             system: SystemData(guestID: 1)))
            var seed: UInt64 = 2
            update[name] = try medianMilliseconds(repetitions) {
                seed += 1
                _ = try executor.execute(guest, writePages(Int(dirtyPages), seed: seed, allowance: 0))
            }
            guests[name] = guest
            if name == "sandboxed" {
                let stable = try executor.execute(guest, ExecutionRequest(entryPoint: "stable.bench", input: u64(1_000_000), kind: .query,
                                                                          system: SystemData(guestID: 1), memoryAllowancePages: 1))
                report.figures["stable_op_ns"] = Double(value(stable.output))
                let calls = try executor.execute(guest, ExecutionRequest(entryPoint: "host.calls", input: u64(2000), kind: .query,
                                                                         system: SystemData(guestID: 1)))
                report.figures["host_call_us"] = Double(value(calls.output)) / 1000
                let idle = try Guest(id: 2, heapCapacityInPages: 16, stableCapacityInPages: 16)
                _ = try pool.execute(idle, ExecutionRequest(entryPoint: "counter.get", kind: .query, system: SystemData(guestID: 2)))
                report.figures["idle_worker_rss_mib"] = Double(pool.residentBytes(of: idle) ?? 0) / Double(1 << 20)
                report.figures["empty_query_sandboxed_us"] = try medianMilliseconds(queryBlocks * queriesPerBlock) {
                    _ = try pool.execute(idle, ExecutionRequest(entryPoint: "counter.get", kind: .query, system: SystemData(guestID: 2)))
                } * 1000
            }
        }
        // Queries in alternating blocks, so that both see the same moments of this noisy machine;
        // back to back within a block, so that each waits for the previous one to be undone.
        var query: [String: [Double]] = [:]
        for _ in 0..<queryBlocks {
            for (name, executor) in executors {
                query[name, default: []] += try samplesMilliseconds(queriesPerBlock) {
                    _ = try executor.execute(guests[name]!, ExecutionRequest(entryPoint: "kv.get", input: [0x6B], kind: .query,
                                                                             system: SystemData(guestID: 1)))
                }
            }
        }
        let querySandboxed = TrackingSuite.middle(query["sandboxed"]!), queryInProcess = TrackingSuite.middle(query["inprocess"]!)
        report.figures["update_sandboxed_ms"] = update["sandboxed"]
        report.figures["update_inprocess_ms"] = update["inprocess"]
        report.figures["update_sandboxed_vs_inprocess"] = update["sandboxed"]! / update["inprocess"]!
        report.figures["query_sandboxed_ms"] = querySandboxed
        report.figures["query_inprocess_ms"] = queryInProcess
        report.figures["query_sandboxed_vs_inprocess"] = querySandboxed / queryInProcess
        report.notes.append("update: pages.write of \(dirtyPages) random pages of a \(heapPages)-page heap, tracked, captured and adopted; medians of \(repetitions)")
        report.notes.append("query: kv.get on that heap, medians of \(queryBlocks) blocks of \(queriesPerBlock) back-to-back queries, sandboxed and in-process blocks alternating; empty_query: counter.get on a 16-page guest (the fixed cost of a sandboxed execution)")
        report.notes.append("stable_op_ns and host_call_us are timed inside the worker; idle RSS = RssAnon + RssShmem of a worker after one query")
        return report
    }

    static func writePages(_ count: Int, seed: UInt64, allowance: UInt64) -> ExecutionRequest {
        ExecutionRequest(entryPoint: "pages.write", input: u32(UInt32(count)) + u64(seed) + u64(heapPages), kind: .update,
                         system: SystemData(guestID: 1), memoryAllowancePages: allowance, dirtyPageLimit: heapPages)
    }

    static let queryBlocks = 20
    static let queriesPerBlock = 25

    static func medianMilliseconds(_ repetitions: Int, _ body: () throws -> Void) throws -> Double {
        TrackingSuite.middle(try samplesMilliseconds(repetitions, body))
    }

    static func samplesMilliseconds(_ repetitions: Int, _ body: () throws -> Void) throws -> [Double] {
        var samples: [Double] = []
        for _ in 0..<repetitions {
            let start = ContinuousClock.now
            try body()
            samples.append(SpawnSuite.milliseconds(since: start))
        }
        return samples
    }

    static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    static func value(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } }
}
