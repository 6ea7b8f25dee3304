@testable import PageStateSandbox
import Glibc
import PageStateKernel
import Testing

@Suite("Ready workers: spawned ahead for new guests, taken without the launcher")
struct ReadyWorkersTests {
    /// Ready workers of a pool whose launcher has started and holds all its spares (4).
    static func readyWorkers(target: Int, refillDelay: Duration = Launcher.replenishDelay) throws -> (ReadyWorkers, Launchers) {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.readyWorkers = target
        configuration.spareWorkers = 4
        let launchers = Launchers(configuration: configuration)
        let launcher = launchers.reserveForSpawn()
        try WorkerProcess(launcher: launcher, timeout: .seconds(5)).terminate()  // starts the launcher
        try #require(waitUntil { launcher.greetedSpares == 4 }, "the launcher's spares are in hand")
        return (ReadyWorkers(launchers: launchers, configuration: configuration, refillDelay: refillDelay), launchers)
    }

    /// Takes what is ready (none), wakes the thread and waits until `count` are ready.
    static func fill(_ ready: ReadyWorkers, to count: Int) throws {
        if ready.take().wake { ready.wake() }
        try #require(waitUntil { ready.count == count }, "the thread made \(count)")
    }

    /// The current launcher's count of workers (ready ones included).
    static func currentCount(_ launchers: Launchers) -> Int {
        let launcher = launchers.reserveForSpawn()
        defer { launcher.releaseWorker() }
        return launcher.workerCount - 1
    }

    @Test("a take that leaves fewer than half claims one wake-up; the thread makes spares in hand ready up to the target, oldest taken first, each counted by its launcher")
    func refillsToTarget() throws {
        let (ready, launchers) = try Self.readyWorkers(target: 3)
        defer { ready.shutDown { launchers.shutDown() } }
        let empty = ready.take()
        #expect(empty.worker == nil && empty.exited.isEmpty && empty.wake, "none yet: the first take claims the wake-up")
        #expect(ready.replenishingThread == nil, "no thread before the first wake-up")
        #expect(ready.take().wake == false, "claimed already: no second wake-up before the thread runs")
        ready.wake()
        #expect(waitUntil { ready.count == 3 })
        usleep(20_000)
        #expect(ready.count == 3, "no more than the target")
        let appended = ready.publishedDeathNotice
        #expect(appended.published == appended.oldest && appended.oldest != 0, "appended: the oldest one's notice is published for the next take")
        #expect(Self.currentCount(launchers) == 3, "each ready worker holds its launcher's reservation")

        let pids = ready.processIDs
        let first = ready.take()
        let worker = try #require(first.worker)
        #expect(worker.pid == pids[0], "the oldest first")
        #expect(!first.wake, "2 of 3 left: no wake-up")
        #expect(!worker.hasExited)
        let afterTake = ready.publishedDeathNotice
        #expect(afterTake.published == afterTake.oldest && afterTake.oldest != 0 && afterTake.oldest != appended.oldest,
                "taken: the next one's notice is published")
        let second = ready.take()
        #expect(second.worker?.pid == pids[1] && second.wake, "1 of 3 left: fewer than half")
        ready.wake()
        #expect(waitUntil { ready.count == 3 })
        #expect(ready.processIDs.first == pids[2] && Set(ready.processIDs).isDisjoint(with: pids.prefix(2)))
        worker.terminate()
        second.worker?.terminate()
        #expect(Self.currentCount(launchers) == 3, "the taken ones released theirs when terminated")
    }

    @Test("a ready worker that exited is skipped and returned for terminating; the take hands out a live one")
    func exitedOnesAreSkipped() throws {
        let (ready, launchers) = try Self.readyWorkers(target: 2)
        defer { ready.shutDown { launchers.shutDown() } }
        try Self.fill(ready, to: 2)
        let pids = ready.processIDs
        #expect(kill(pids[0].rawValue, SIGKILL) == 0)
        #expect(waitUntil { (try? statFields(of: pids[0]).first).map { $0 == "Z" } ?? true }, "it died (a zombie or reaped)")
        let taken = ready.take()
        #expect(taken.worker?.pid == pids[1], "the live one")
        #expect(taken.exited.map(\.pid) == [pids[0]] && taken.exited.allSatisfy(\.hasExited))
        #expect(taken.wake)
        let noneLeft = ready.publishedDeathNotice
        #expect(noneLeft.published == 0 && noneLeft.oldest == 0, "none left: nothing published")
        for worker in taken.exited + [taken.worker].compactMap({ $0 }) { worker.terminate() }
    }

    @Test("ready workers of a launcher spawns no longer use are taken out for terminating")
    func workersOfOtherLaunchersAreTakenOut() throws {
        let (ready, launchers) = try Self.readyWorkers(target: 2)
        defer { ready.shutDown { launchers.shutDown() } }
        try Self.fill(ready, to: 2)
        #expect(ready.takeWorkers(notFrom: launchers.currentAndNext).isEmpty, "both from the current launcher")
        let stale = ready.takeWorkers(notFrom: [])
        #expect(stale.count == 2 && ready.count == 0)
        let takenOut = ready.publishedDeathNotice
        #expect(takenOut.published == 0 && takenOut.oldest == 0, "taken out: nothing published")
        for worker in stale { worker.terminate() }
        #expect(Self.currentCount(launchers) == 0)
    }

    @Test("after shutDown nothing is handed out and a run woken before it makes nothing ready")
    func shutDownStopsHandingOut() throws {
        // The run comes 300 ms after its wake-up: after the shutDown below.
        let (ready, launchers) = try Self.readyWorkers(target: 2, refillDelay: .milliseconds(300))
        let claim = ready.take()
        #expect(claim.wake)
        ready.wake()
        let thread = try #require(ready.replenishingThread)
        let launcher = launchers.reserveForSpawn()
        launcher.releaseWorker()
        var ran = false, sparesAfterRun = -1
        ready.shutDown {
            // The thread looks for wake-ups every delay only once a run has ended: the run was after the shutDown began.
            ran = waitUntil { thread.isLookingEveryDelay }
            sparesAfterRun = launcher.greetedSpares
            launchers.shutDown()
        }
        #expect(ran, "the woken run happened, after the list was shut")
        #expect(sparesAfterRun == 4, "the run took none of the launcher's spares")
        #expect(ready.count == 0)
        let after = ready.take()
        #expect(after.worker == nil && !after.wake)
        #expect(launcher.workerCount == 0)
    }

    @Test("a pool with no spares keeps no ready workers")
    func noSparesNoReadyWorkers() throws {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.spareWorkers = 0
        let launchers = Launchers(configuration: configuration)
        let ready = ReadyWorkers(launchers: launchers, configuration: configuration)
        defer { ready.shutDown { launchers.shutDown() } }
        let taken = ready.take()
        #expect(taken.worker == nil && !taken.wake)
    }
}
