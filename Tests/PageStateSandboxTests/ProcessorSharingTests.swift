import Foundation
import PageState
import Testing

/// A worker that runs on its host thread's processor: spinning there only delays it, so the host
/// yields at once, and a worker allowed elsewhere moves away.
@Suite("Sandbox pool: host and worker on one processor")
struct ProcessorSharingTests {
    static let processorCount = (try? allowedProcessors().count) ?? 0

    @Test("a worker held on the host thread's processor is yielded to, and every result is right")
    func workerHeldOnTheHostsProcessor() throws {
        try onOneProcessor { pool, guest, here in
            let worker = try #require(pool.workerProcessID(of: guest))
            try holdAsleep(worker, on: here, spin: .microseconds(200))
            for expected in UInt64(2)...21 {
                #expect(u64(try pool.execute(guest, request("counter.increment")).output) == expected)
                #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == expected)
            }
            #expect(pool.statistics.waitsBesideWorker > 0)
            #expect(try lastProcessor(of: worker) == here)
        }
    }

    @Test("a worker that finds its host thread on its processor moves to another one",
          .enabled(if: processorCount >= 2, "needs two processors this process may run on"))
    func workerMovesOffTheHostsProcessor() throws {
        // Workers spin 10 ms for their next request: one that stayed would be seen there.
        try onOneProcessor(spin: .milliseconds(10)) { pool, guest, here in
            let worker = try #require(pool.workerProcessID(of: guest))
            let everywhere = try allowedProcessors(of: worker)
            try holdAsleep(worker, on: here, spin: .milliseconds(10))
            #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 1)
            try setAllowedProcessors(everywhere, of: worker)
            #expect(u64(try pool.execute(guest, request("counter.increment")).output) == 2)
            // It left at its first look after the result and restored its set (a moment later if it
            // was preempted in between).
            var (processor, set) = (try lastProcessor(of: worker), try allowedProcessors(of: worker))
            for _ in 0..<5 where processor == here || set != everywhere {
                usleep(1000)
                (processor, set) = (try lastProcessor(of: worker), try allowedProcessors(of: worker))
            }
            #expect(processor != here)
            #expect(set == everywhere)
            #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 2)
        }
    }

    /// Runs `body` with the calling thread held on the processor it is on, and a pool (spinning
    /// `spin` before sleeping) whose guest's worker served one update; restores the thread's
    /// processors afterwards.
    private func onOneProcessor(spin: Duration = .microseconds(200), _ body: (SandboxPool, Guest, UInt32) throws -> Void) throws {
        let pool = makePool { $0.spinBeforeSleeping = spin }
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 64, stableCapacityInPages: 16)
        #expect(u64(try pool.execute(guest, request("counter.increment")).output) == 1)
        // Only now: the launcher and its workers must not inherit the narrowed set.
        let allowed = try allowedProcessors()
        let here = try #require(currentProcessor())
        try setAllowedProcessors([here])
        defer { try? setAllowedProcessors(allowed) }
        try body(pool, guest, here)
    }

    /// Lets `worker` run only on `processor`, once its `spin` after its last execution is over: a
    /// worker moving off its host's processor restores the set it had, undoing a change made in
    /// those microseconds.
    private func holdAsleep(_ worker: ProcessID, on processor: UInt32, spin: Duration) throws {
        usleep(UInt32(spin / .microseconds(1)) + 5_000)
        try setAllowedProcessors([processor], of: worker)
    }

    /// The processor `process` last ran on (field 39 of /proc/PID/stat).
    private func lastProcessor(of process: ProcessID) throws -> UInt32 {
        let stat = try String(contentsOfFile: "/proc/\(process)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
        return try #require(UInt32(fields[36]))
    }
}
