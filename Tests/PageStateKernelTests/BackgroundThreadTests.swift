import Foundation
import Glibc
import PageStateKernel
import Synchronization
import SystemPackage
import Testing

@Suite struct BackgroundThreadTests {
    /// What the thread saw of itself: its scheduling policy and its name.
    final class Observed: Sendable {
        let policy = Atomic<Int32>(-1)
        let name = Mutex("")
        let taken = Atomic<UInt64>(0)
    }

    static func observe(_ observed: Observed) {
        observed.policy.store(sched_getscheduler(0), ordering: .relaxed)
        let comm = (try? readProcFile("/proc/thread-self/comm")) ?? ""
        observed.name.withLock { $0 = comm.trimmingCharacters(in: .newlines) }
    }

    @Test func aBatchThreadRunsUnderSchedBatchWithItsNameAndIsJoined() throws {
        let observed = Observed()
        let thread = try BackgroundThread(name: "pagestate-test-thread-name", policy: .batch) { Self.observe(observed) }
        thread.join()
        #expect(observed.policy.load(ordering: .relaxed) == 3, "SCHED_BATCH")
        #expect(observed.name.withLock { $0 } == "pagestate-test-", "the first 15 bytes")
    }

    @Test func aNormalThreadRunsUnderSchedOther() throws {
        let observed = Observed()
        try BackgroundThread(name: "normal", policy: .normal) { Self.observe(observed) }.join()
        #expect(observed.policy.load(ordering: .relaxed) == 0, "SCHED_OTHER")
        #expect(observed.name.withLock { $0 } == "normal")
    }

    @Test func anEventCounterSumsWhatIsAddedAndWakesAWaitingThread() throws {
        let counter = try FileDescriptor.eventCounter()
        defer { try? counter.close() }
        try counter.addToEventCounter()
        try counter.addToEventCounter(2)
        #expect(try counter.takeEventCount() == 3)
        let observed = Observed()
        let thread = try BackgroundThread(name: "waiter", policy: .normal) {
            observed.taken.store((try? counter.takeEventCount()) ?? 0, ordering: .relaxed)
        }
        usleep(20_000)
        #expect(observed.taken.load(ordering: .relaxed) == 0, "the counter is zero: the thread waits")
        try counter.addToEventCounter(5)
        thread.join()
        #expect(observed.taken.load(ordering: .relaxed) == 5)
        #expect(throws: Errno.invalidArgument) { try counter.addToEventCounter(UInt64.max) }
    }
}
