@testable import PageStateSandbox
import Glibc
import PageStateKernel
import Testing

@Suite("Ready workers: spawned ahead for new guests, taken without the launcher")
struct ReadyWorkersTests {
    /// Ready workers of a pool whose launcher has started and holds all its spares (4).
    static func readyWorkers(target: Int) throws -> (ReadyWorkers, Launchers) {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.readyWorkers = target
        configuration.spareWorkers = 4
        let launchers = Launchers(configuration: configuration)
        let launcher = launchers.reserveForSpawn()
        try WorkerProcess(launcher: launcher, timeout: .seconds(5)).terminate()  // starts the launcher
        try #require(waitUntil { launcher.greetedSpares == 4 }, "the launcher's spares are in hand")
        return (ReadyWorkers(launchers: launchers, configuration: configuration), launchers)
    }

    static func shutDown(_ ready: ReadyWorkers, _ launchers: Launchers) {
        let (workers, thread) = ready.close()
        for worker in workers { worker.terminate() }
        launchers.shutDown()
        thread?.stop()
    }

    /// Takes what is ready (none), wakes the thread and waits until `count` are ready.
    static func fill(_ ready: ReadyWorkers, to count: Int) throws {
        if ready.take().wake { ready.wake() }
        try #require(waitUntil { ready.count == count }, "the thread made \(count)")
    }

    @Test("a take that leaves fewer than half claims one wake-up; the thread makes spares in hand ready up to the target, each counted by its launcher")
    func refillsToTarget() throws {
        let (ready, launchers) = try Self.readyWorkers(target: 3)
        defer { Self.shutDown(ready, launchers) }
        let empty = ready.take()
        #expect(empty.worker == nil && empty.dead.isEmpty && empty.wake, "none yet: the first take claims the wake-up")
        #expect(ready.replenishingThread == nil, "no thread before the first wake-up")
        #expect(ready.take().wake == false, "claimed already: no second wake-up before the thread runs")
        ready.wake()
        #expect(waitUntil { ready.count == 3 })
        usleep(20_000)
        #expect(ready.count == 3, "no more than the target")
        let launcher = launchers.reserveForSpawn()  // the current launcher, to read its count
        launcher.releaseWorker()
        #expect(launcher.workerCount == 3, "each ready worker holds its launcher's reservation")

        let pids = ready.processIDs
        let first = ready.take()
        let worker = try #require(first.worker)
        #expect(worker.pid == pids.last, "the newest first")
        #expect(!first.wake, "2 of 3 left: no wake-up")
        #expect(!worker.deathNoticed)
        let second = ready.take()
        #expect(second.worker?.pid == pids[1] && second.wake, "1 of 3 left: fewer than half")
        ready.wake()
        #expect(waitUntil { ready.count == 3 })
        #expect(ready.processIDs.first == pids[0] && Set(ready.processIDs).isDisjoint(with: pids.suffix(2)))
        worker.terminate()
        second.worker?.terminate()
        #expect(launcher.workerCount == 3, "the taken ones released theirs when terminated")
    }

    @Test("a ready worker that died is skipped and returned for terminating; the take hands out a live one")
    func deadOnesAreSkipped() throws {
        let (ready, launchers) = try Self.readyWorkers(target: 2)
        defer { Self.shutDown(ready, launchers) }
        try Self.fill(ready, to: 2)
        let pids = ready.processIDs
        #expect(kill(pids[1].rawValue, SIGKILL) == 0)
        #expect(waitUntil { (try? statFields(of: pids[1]).first).map { $0 == "Z" } ?? true }, "it died (a zombie or reaped)")
        let taken = ready.take()
        #expect(taken.worker?.pid == pids[0], "the live one")
        #expect(taken.dead.map(\.pid) == [pids[1]] && taken.dead.allSatisfy(\.deathNoticed))
        #expect(taken.wake)
        for worker in taken.dead + [taken.worker].compactMap({ $0 }) { worker.terminate() }
    }

    @Test("after close nothing is handed out and a woken thread spawns nothing")
    func closeStopsHandingOut() throws {
        let (ready, launchers) = try Self.readyWorkers(target: 2)
        defer { launchers.shutDown() }
        try Self.fill(ready, to: 2)
        _ = ready.take().worker?.terminate()
        let refill = ready.take()
        refill.worker?.terminate()
        #expect(refill.wake)
        ready.wake()  // the thread's run starts 2 ms from now, after the close below
        let (workers, thread) = ready.close()
        #expect(workers.isEmpty)
        let after = ready.take()
        #expect(after.worker == nil && !after.wake)
        usleep(20_000)  // the woken run finds the pool closed
        thread?.stop()
        #expect(ready.count == 0)
        let launcher = launchers.reserveForSpawn()
        launcher.releaseWorker()
        #expect(launcher.workerCount == 0, "every worker taken was terminated, its reservation released")
        #expect(launcher.greetedSpares == 2, "the woken thread took none of the launcher's spares")
    }
}
