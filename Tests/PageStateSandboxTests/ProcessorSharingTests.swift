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
            let everywhere = try holdAsleep(worker, on: here, spin: .milliseconds(10))
            #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 1)
            try setAllowedProcessors(everywhere, of: worker)
            #expect(u64(try pool.execute(guest, request("counter.increment")).output) == 2)
            // It left at its first look after the result and restored its set: promptly, but a
            // loaded machine may preempt it between the two (allow a second for the set).
            var set = try allowedProcessors(of: worker)
            for _ in 0..<1_000 where set != everywhere {
                usleep(1000)
                set = try allowedProcessors(of: worker)
            }
            var processor = try lastProcessor(of: worker)
            for _ in 0..<5 where processor == here {
                usleep(1000)
                processor = try lastProcessor(of: worker)
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

    /// Lets `worker` run only on `processor` once it sleeps for its next request, and returns the
    /// processors it was allowed. A worker moving off its host's processor restores the set it had,
    /// undoing a change made during the move, and a loaded machine may preempt it there for
    /// milliseconds; asleep, it cannot.
    @discardableResult
    private func holdAsleep(_ worker: ProcessID, on processor: UInt32, spin: Duration) throws -> [UInt32] {
        usleep(UInt32(spin / .microseconds(1)))
        for _ in 0..<2_000 {
            if try state(of: worker) == "S" {
                let allowed = try allowedProcessors(of: worker)
                try setAllowedProcessors([processor], of: worker)
                if try state(of: worker) == "S", try allowedProcessors(of: worker) == [processor] { return allowed }
            }
            usleep(1000)
        }
        Issue.record("worker \(worker) did not stay asleep on processor \(processor)")
        return []
    }

    /// The scheduler state of `process` ("R" running, "S" asleep, ...; field 3 of /proc/PID/stat).
    private func state(of process: ProcessID) throws -> Substring {
        try statFields(of: process)[0]
    }

    /// The processor `process` last ran on (field 39 of /proc/PID/stat).
    private func lastProcessor(of process: ProcessID) throws -> UInt32 {
        try #require(UInt32(try statFields(of: process)[36]))
    }

}
