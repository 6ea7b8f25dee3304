@testable import PageStateSandbox
import Glibc
import PageStateKernel
import Synchronization
import SystemPackage
import Testing

@Suite("Launcher: the replenishing thread made on demand")
struct OnDemandReplenishingThreadTests {
    @Test("closed before its first wake-up, it never starts a thread and wake-ups say so")
    func closedBeforeStarting() {
        let onDemand = OnDemandReplenishingThread(name: "test-on-demand", delay: .milliseconds(5), stayAwake: .zero)
        let runs = ReplenishingThreadTests.Runs()
        // (Results bound first: `#expect` cannot take apart a call on a non-copyable value.)
        let thread = onDemand.close()
        #expect(thread == nil)
        let woken = onDemand.wake(work: { _ in runs.count.add(1, ordering: .relaxed) })
        #expect(!woken)
        let running = onDemand.running
        #expect(running == nil)
        usleep(30_000)
        #expect(runs.count.load(ordering: .relaxed) == 0)
    }

    @Test("the first wake-up starts the thread with its work, later ones reach it; after close and stop a wake-up runs nothing and writes to no descriptor opened since")
    func wakeUpsAfterStopTouchNothingElse() throws {
        let onDemand = OnDemandReplenishingThread(name: "test-on-demand", delay: .milliseconds(5), stayAwake: .zero)
        let runs = ReplenishingThreadTests.Runs()
        // (Results bound first: `#expect` cannot take apart a call on a non-copyable value.)
        let started = onDemand.wake(work: { _ in runs.count.add(1, ordering: .relaxed) })
        #expect(started)
        #expect(ReplenishingThreadTests.waitForRuns(runs, 1))
        let running = onDemand.running
        let thread = try #require(running)
        let wokenAgain = onDemand.wake(work: { _ in runs.count.add(100, ordering: .relaxed) })
        #expect(wokenAgain, "the running thread's work is kept")
        #expect(ReplenishingThreadTests.waitForRuns(runs, 2))
        #expect(runs.count.load(ordering: .relaxed) == 2)
        let closing = onDemand.close()
        let closed = try #require(closing)
        #expect(closed === thread)
        closed.stop()
        let runningAfterClose = onDemand.running
        #expect(runningAfterClose == nil)
        // Had `stop()` closed the thread's event counter, this would get its number back, and the
        // wake-up (a `write`: the thread never looks, stayAwake is zero) would land in it.
        let openedSince = try FileDescriptor.eventCounter()
        defer { try? openedSince.close() }
        let wokenAfterStop = onDemand.wake(work: { _ in runs.count.add(100, ordering: .relaxed) })
        #expect(wokenAfterStop, "a thread that was started takes wake-ups until the end (they do nothing)")
        #expect(thread.wakeUpWrites == 3, "each wake-up wrote: the thread never looks")
        usleep(30_000)
        #expect(runs.count.load(ordering: .relaxed) == 2, "no run after stop")
        #expect(try !openedSince.waitReadable(timeoutMilliseconds: 0), "nothing written to a descriptor opened after stop")
    }
}
