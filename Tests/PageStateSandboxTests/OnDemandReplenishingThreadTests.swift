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

    @Test("the first wake-up starts the thread with its work, later ones reach it; after close and stop a wake-up runs nothing and writes to the thread's own counter, still open")
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
        // The wake-up goes to the thread's own counter, still open (stop() does not close it): never
        // to a descriptor closed or reused since.
        let counter = thread.signals.wakeUps
        let wokenAfterStop = onDemand.wake(work: { _ in runs.count.add(100, ordering: .relaxed) })
        #expect(wokenAfterStop, "a thread that was started takes wake-ups until the end (they run nothing)")
        #expect(thread.wakeUpWrites == 3, "each wake-up wrote: the thread never looks")
        #expect(fcntl(counter.rawValue, F_GETFD) != -1, "the counter stays open after stop()")
        #expect(try counter.waitReadable(timeoutMilliseconds: 0), "the wake-up's write is in it")
        usleep(30_000)
        #expect(runs.count.load(ordering: .relaxed) == 2, "no run after stop")
    }

    @Test("once the value and its thread are gone, the thread's signals are released (and close their counter)")
    func endReleasesTheSignals() throws {
        weak var signals: ReplenishingThread.Signals?
        do {
            let onDemand = OnDemandReplenishingThread(name: "test-on-demand", delay: .milliseconds(5), stayAwake: .zero)
            let started = onDemand.wake(work: { _ in })
            #expect(started)
            let running = onDemand.running
            signals = try #require(running).signals
            let closing = onDemand.close()
            try #require(closing).stop()
        }
        #expect(signals == nil)
    }
}
