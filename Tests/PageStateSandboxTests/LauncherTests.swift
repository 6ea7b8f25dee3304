@testable import PageStateSandbox
import Foundation
import Glibc
import PageStateKernel
import PageStateTracking
import Synchronization
import SystemPackage
import Testing

/// A worker from `launcher`, counted in it as a pool's `Launchers` would.
func spawnWorker(from launcher: Launcher) throws -> WorkerProcess {
    launcher.reserveWorker()
    return try WorkerProcess(launcher: launcher, timeout: .seconds(5))
}

@Suite("Launcher: spares and exit reports")
struct LauncherTests {
    func makeLauncher(spares: Int, exits: WorkerExitReporting = .automatic) -> Launcher {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.spareWorkers = spares
        configuration.exitReporting = exits
        return Launcher(configuration: configuration)
    }

    /// The launcher's children (its workers, spares included), polled until `done` holds or 5 s pass.
    func children(of launcher: Launcher, until done: ([pid_t]) -> Bool) throws -> [pid_t] {
        let pid = try #require(launcher.processID).rawValue
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let listed = (try? readProcFile(FilePath("/proc/\(pid)/task/\(pid)/children"))) ?? ""
            let children = listed.split(separator: " ").compactMap { pid_t($0) }
            if done(children) || ContinuousClock.now > deadline { return children }
            usleep(2_000)
        }
    }

    @Test("after a spawn the host holds its spares; a spare killed while waiting is skipped by the next spawn",
          arguments: exitReportings)
    func sparesAreHeldAndDeadOnesSkipped(_ exits: WorkerExitReporting) throws {
        let launcher = makeLauncher(spares: 2, exits: exits)
        defer { launcher.shutDown() }
        let first = try spawnWorker(from: launcher)
        defer { first.terminate() }
        let spares = try children(of: launcher) { $0.count == 3 }.filter { $0 != first.pid.rawValue }
        #expect(spares.count == 2, "the spares asked for after the spawn")
        #expect(waitUntil { launcher.spareWorkerLives == [.alive, .alive] }, "greeted, their death notices linked")
        for spare in spares {
            let descriptor = try FileDescriptor.processDescriptor(ProcessID(rawValue: spare))
            kill(spare, SIGKILL)
            _ = try descriptor.waitReadable(timeoutMilliseconds: 5000)
            try descriptor.close()
        }
        #expect(launcher.spareWorkerLives == [.dead, .dead], "the kernel marked both notices")
        let second = try spawnWorker(from: launcher)
        defer { second.terminate() }
        #expect(!spares.contains(second.pid.rawValue))
        #expect(kill(second.pid.rawValue, 0) == 0, "the new worker is alive")
    }

    @Test("a spare in hand is handed out without starting or restarting the launcher; none live in hand: nil")
    func spareInHandNeverStartsTheLauncher() throws {
        let launcher = makeLauncher(spares: 2)
        defer { launcher.shutDown() }
        let none = launcher.spareInHand()
        #expect(none.spare == nil && !none.coming && launcher.processID == nil, "not started: nil, nothing coming, still not started")
        #expect(launcher.refills == 0, "a launcher not running asks for nothing")
        let first = try spawnWorker(from: launcher)
        defer { first.terminate() }
        #expect(waitUntil { launcher.spareWorkerLives == [.alive, .alive] }, "greeted, their death notices linked")
        let spare = try #require(launcher.spareInHand().spare)
        #expect(spare.channel.mailbox?.workerLife == .alive)
        spare.close()
        launcher.forgetExit(of: spare.pid)
        let pid = try #require(launcher.processID)
        let descriptor = try FileDescriptor.processDescriptor(pid)
        defer { try? descriptor.close() }
        kill(pid.rawValue, SIGKILL)
        _ = try descriptor.waitReadable(timeoutMilliseconds: 5000)
        #expect(waitUntil { launcher.spareWorkerLives == [.dead] }, "its spare died with it")
        #expect(launcher.spareInHand().spare == nil, "the dead spare is dropped")
        #expect(launcher.processID == pid && launcher.restarts == 0, "not restarted")
    }

    @Test("a spare in hand is left to spawns once fewer than half are in hand; the refill then on its way is reported coming")
    func spareInHandLeavesTheLastOnesToSpawns() throws {
        let launcher = makeLauncher(spares: 4)
        defer { launcher.shutDown() }
        let first = try spawnWorker(from: launcher)
        defer { first.terminate() }
        #expect(waitUntil { launcher.spareWorkerLives == [.alive, .alive, .alive, .alive] })
        let taken = (0..<3).compactMap { _ in launcher.spareInHand().spare }
        #expect(taken.count == 3, "4, 3, then 2 in hand: at least half")
        let left = launcher.spareInHand()
        #expect(left.spare == nil && left.coming, "1 in hand: left to spawns; the refill claimed at 1 is coming")
        let spawned = try spawnWorker(from: launcher)  // a spawn still takes it
        spawned.terminate()
        for spare in taken {
            try? spare.pidfd.sendSignal(SIGKILL)
            spare.close()
            launcher.forgetExit(of: spare.pid)
        }
    }

    /// Spawns a first worker from `launcher` (one spare configured, asked for after it), waits until
    /// the replenishing thread has greeted that spare, and takes it.
    private func spareGreetedAhead(of launcher: Launcher) throws -> (first: WorkerProcess, spare: Launcher.Spawned) {
        let first = try spawnWorker(from: launcher)
        #expect(waitUntil { launcher.greetedSpares == 1 }, "the replenishing thread read the launcher's answer and greeted the spare")
        do { return (first, try launcher.spawn()) } catch {
            first.terminate()
            throw error
        }
    }

    @Test("a spare's death notice in its mailbox says alive once it mapped the mailbox, and dead once it was killed")
    func deathNoticeFollowsTheWorker() throws {
        let launcher = makeLauncher(spares: 1)
        defer { launcher.shutDown() }
        let (first, spare) = try spareGreetedAhead(of: launcher)
        defer { first.terminate(); spare.close() }
        let mailbox = try #require(spare.channel.mailbox)
        #expect(waitUntil { mailbox.workerLife == .alive }, "the worker linked its notice: \(mailbox.workerLife)")
        let descriptor = try FileDescriptor.processDescriptor(spare.pid)
        defer { try? descriptor.close() }
        kill(spare.pid.rawValue, SIGKILL)
        #expect(try descriptor.waitReadable(timeoutMilliseconds: 5000))
        #expect(mailbox.workerLife == .dead, "the kernel marked the notice before the process was reported gone")
    }

    @Test("a spare is greeted off the spawn's path: its `ready` read and its mailbox sent before a spawn takes it")
    func sparesAreGreetedAhead() throws {
        let launcher = makeLauncher(spares: 1)
        defer { launcher.shutDown() }
        let (first, spare) = try spareGreetedAhead(of: launcher)
        defer { first.terminate(); spare.close() }
        guard case .success(.message(.ready, _, _))? = spare.greeting else {
            Issue.record("the spare's first message was not read ahead as `ready`: \(String(describing: spare.greeting))")
            return
        }
        #expect(spare.channel.mailbox != nil)
        #expect(try spare.channel.socket.waitReadable(timeoutMilliseconds: 0) == false, "nothing left to read on the spawn's path")
        #expect(kill(spare.pid.rawValue, 0) == 0)
    }

    @Test("spawns ask for spares in batches: only once fewer than half are left, then as many as make the number configured")
    func sparesAreAskedForInBatches() throws {
        let launcher = makeLauncher(spares: 4)
        defer { launcher.shutDown() }
        var workers: [WorkerProcess] = []
        defer { for worker in workers { worker.terminate() } }
        func spawn(_ guest: UInt64) throws { workers.append(try spawnWorker(from: launcher)) }
        try spawn(1)  // no spare yet: forked on demand, then a refill
        #expect(launcher.refills == 1)
        _ = waitUntil { launcher.greetedSpares >= 4 }
        #expect(launcher.greetedSpares == 4)
        try spawn(2)
        try spawn(3)
        #expect(launcher.refills == 1, "3, then 2 of 4 spares left: no wake-up")
        #expect(launcher.sparesInHandOrAsked == 2)
        try spawn(4)
        #expect(launcher.refills == 2, "1 left, fewer than half: one wake-up")
        _ = waitUntil { launcher.greetedSpares >= 4 }
        #expect(launcher.greetedSpares == 4, "topped up to 4 again")
        #expect(try children(of: launcher) { $0.count == 8 }.count == 8, "4 workers and 4 spares, nothing more forked")
    }

    @Test("a worker that fails before it is ready fails the spawn promptly with how it ended, also when it was a spare",
          .enabled(if: TrackerKind.best == .asyncWriteProtect,
                   "only a worker with the async write-protect tracker opens a descriptor (its userfaultfd) before it is ready"))
    func workerFailingBeforeReadyIsReported() throws {
        let pool = makePool { $0.workerOpenFiles = 4 }  // 0-3 are taken: the userfaultfd cannot be opened
        defer { pool.shutDown() }
        for id in 1...2 {
            let guest = try Guest(id: UInt64(id), heapCapacityInPages: 16, stableCapacityInPages: 16)
            let start = ContinuousClock.now
            #expect {
                try pool.warmUp(guest)
            } throws: { error in
                guard case ExecutionError.spawnFailed(let message) = error else { return false }
                return message.contains("failed before it was ready") && message.contains("120")
            }
            #expect(ContinuousClock.now - start < .seconds(2))
            usleep(200_000)  // the spares asked for after the failure have failed too by the next spawn
        }
    }

    @Test("workers killed at the same moment are each reaped and reported with how they ended", arguments: exitReportings)
    func simultaneousExitsAreEachReported(_ exits: WorkerExitReporting) throws {
        let launcher = makeLauncher(spares: 1, exits: exits)
        #expect(launcher.exitReporting == exits)
        defer { launcher.shutDown() }
        let workers = try (0..<24).map { _ in try launcher.spawn() }
        defer { for worker in workers { worker.close() } }
        // All before the launcher looks: their SIGCHLDs coalesce into fewer wake-ups than exits, and
        // its reaping loop must still find every one.
        for worker in workers { kill(worker.pid.rawValue, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(10)
        for worker in workers {
            let termination = launcher.termination(of: worker.pid, pidfd: worker.pidfd, timeout: max(.zero, deadline - ContinuousClock.now))
            #expect(termination == .signaled(SIGKILL), "worker \(worker.pid)")
        }
        #expect(launcher.heldExitReports == 0, "each report was taken once; none is held twice")
        let reaped = try children(of: launcher) { children in workers.allSatisfy { !children.contains($0.pid.rawValue) } }
        #expect(workers.allSatisfy { !reaped.contains($0.pid.rawValue) }, "no zombie is left")
    }

    @Test("exit reports of workers discarded without asking are dropped, not kept; no zombie is left", arguments: exitReportings)
    func discardedExitsAreNotKept(_ exits: WorkerExitReporting) throws {
        let launcher = makeLauncher(spares: 1, exits: exits)
        defer { launcher.shutDown() }
        for _ in 0..<40 {
            let worker = try spawnWorker(from: launcher)
            worker.terminate()
        }
        if exits == .launcher {
            // Read every report still queued (no process has pid 0, so this waits out the timeout).
            let nobody = try FileDescriptor.processDescriptor(ProcessID(rawValue: getpid()))
            defer { try? nobody.close() }
            #expect(launcher.termination(of: ProcessID(rawValue: 0), pidfd: nobody, timeout: .milliseconds(500)) == nil)
            #expect(launcher.heldExitReports == 0)
        }
        #expect(try children(of: launcher) { $0.count == 1 }.count == 1, "only the spare is left: every discarded worker was reaped")
    }
}

@Suite("Launcher: the replenishing thread")
struct ReplenishingThreadTests {
    /// Whether the thread `id` of this process still exists, polled until `exists` is the answer or 5 s pass.
    static func threadExists(_ id: Int32, until exists: Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let found = FileManager.default.fileExists(atPath: "/proc/self/task/\(id)")
            if found == exists || ContinuousClock.now > deadline { return found }
            usleep(1_000)
        }
    }

    final class Runs: Sendable {
        let count = Atomic<Int>(0)
        let firstAt = Mutex<ContinuousClock.Instant?>(nil)
        let lastAt = Mutex<ContinuousClock.Instant?>(nil)
        /// The thread's timer slack as each run saw it.
        let timerSlacks = Mutex<[Duration]>([])
    }

    @Test("a wake-up runs the work no sooner than the delay; wake-ups during the delay make one more run; stop ends the thread")
    func wakeUpsAreDelayedAndMerged() throws {
        let runs = Runs()
        let delay = Duration.milliseconds(300)
        let thread = try ReplenishingThread(name: "test-replenish", delay: delay, stayAwake: .seconds(10)) { _ in
            runs.firstAt.withLock { $0 = $0 ?? .now }
            runs.count.add(1, ordering: .relaxed)
        }
        let woken = ContinuousClock.now
        thread.wake()
        usleep(10_000)  // the thread is in its delay now
        thread.wake()
        thread.wake()
        while runs.count.load(ordering: .relaxed) < 2 && ContinuousClock.now - woken < .seconds(5) { usleep(1_000) }
        let first = try #require(runs.firstAt.withLock { $0 })
        #expect(first - woken >= delay)
        usleep(2 * 300_000)
        #expect(runs.count.load(ordering: .relaxed) == 2, "the two wake-ups during the first delay: one more run")
        let id = try #require(thread.kernelThreadID)
        #expect(Self.threadExists(id, until: true))
        thread.stop()
        #expect(!Self.threadExists(id, until: false), "joined: the thread is gone")
        #expect(runs.count.load(ordering: .relaxed) == 2)
    }

    /// The thread's voluntary context switches so far (each a sleep it woke from).
    static func contextSwitches(ofThread id: Int32) throws -> Int {
        let status = try readProcFile(FilePath("/proc/self/task/\(id)/status"))
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("voluntary_ctxt_switches:") })
        return try #require(Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)))
    }

    /// Waits until `runs` reaches `count` (5 s at most) and returns whether it did.
    static func waitForRuns(_ runs: Runs, _ count: Int) -> Bool {
        waitUntil { runs.count.load(ordering: .relaxed) >= count }
    }

    @Test("for stayAwake after a run a wake-up writes nothing, and runs keep the default timer slack; quiet longer, the thread sleeps and a wake-up writes once")
    func awakeAfterARunAsleepWhenQuiet() throws {
        let runs = Runs()
        let stayAwake = Duration.milliseconds(600)
        let delay = Duration.milliseconds(20)
        let thread = try ReplenishingThread(name: "test-replenish", delay: delay, stayAwake: stayAwake) { _ in
            runs.lastAt.withLock { $0 = .now }
            runs.timerSlacks.withLock { $0.append(callingThreadTimerSlack()) }
            runs.count.add(1, ordering: .relaxed)
        }
        defer { thread.stop() }
        thread.wake()
        #expect(thread.wakeUpWrites == 1, "a new thread sleeps until its first wake-up")
        #expect(Self.waitForRuns(runs, 1))
        #expect(waitUntil { thread.isLookingEveryDelay }, "after a run the thread looks every delay")
        let woken = ContinuousClock.now
        thread.wake()
        #expect(Self.waitForRuns(runs, 2), "a wake-up stored while it looks is taken")
        #expect(try #require(runs.lastAt.withLock { $0 }) - woken >= delay, "and run no sooner than the delay after the wake-up")
        #expect(thread.wakeUpWrites == 1, "a wake-up while it looks writes nothing")
        let defaultSlack = callingThreadTimerSlack()
        #expect(runs.timerSlacks.withLock { $0 } == [defaultSlack, defaultSlack],
                "the second run, after looks with a slack, and the delay before it keep the default")
        // Quiet for stayAwake (30 looks, longer if the machine is slow), then asleep: its context
        // switches stop (looking every 20 ms, ~10 in 200 ms).
        let id = try #require(thread.kernelThreadID)
        var asleep = false
        let deadline = ContinuousClock.now + .seconds(10)
        while !asleep && ContinuousClock.now < deadline {
            let before = try Self.contextSwitches(ofThread: id)
            usleep(200_000)
            asleep = try Self.contextSwitches(ofThread: id) == before
        }
        #expect(asleep, "quiet longer than stayAwake: asleep, not looking every 20 ms")
        #expect(!thread.isLookingEveryDelay)
        thread.wake()
        #expect(thread.wakeUpWrites == 2, "a sleeping thread is woken with a write")
        #expect(Self.waitForRuns(runs, 3))
    }

    @Test("the first spawn starts it; shutDown stops it; a shut-down launcher starts no other")
    func startedBySpawnStoppedByShutDown() throws {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.spareWorkers = 1
        let launcher = Launcher(configuration: configuration)
        #expect(launcher.replenishingThread == nil, "no thread before the first spawn")
        let first = try spawnWorker(from: launcher)
        first.terminate()
        let thread = try #require(launcher.replenishingThread)
        let deadline = ContinuousClock.now + .seconds(5)
        while thread.kernelThreadID == nil && ContinuousClock.now < deadline { usleep(1_000) }
        let id = try #require(thread.kernelThreadID)
        // The spares it asks for arrive: later spawns work as before.
        for _ in 2...6 {
            let worker = try spawnWorker(from: launcher)
            worker.terminate()
        }
        #expect(launcher.replenishingThread === thread, "one thread for the launcher's life")
        // Its last run started (no wake-up pending), so `prepare()` below does try to wake it.
        #expect(waitUntil { launcher.greetedSpares == 1 })
        launcher.shutDown()
        #expect(launcher.replenishingThread == nil)
        #expect(!Self.threadExists(id, until: false), "the thread has ended")
        launcher.prepare()
        #expect(launcher.replenishingThread == nil, "a shut-down launcher does not start another thread")
    }

    @Test("a launcher's thread looks for wake-ups after its runs only when spawns wake it: not when the pool keeps ready workers")
    func looksOnlyWhenSpawnsWakeIt() {
        for (ready, spares, looks) in [(0, 2, true), (2, 2, false), (2, 0, true)] {
            var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
            configuration.readyWorkers = ready
            configuration.spareWorkers = spares
            let stayAwake = Launcher(configuration: configuration).replenishingStayAwake
            #expect(stayAwake == (looks ? Launcher.replenishingStaysAwake : .zero), "ready \(ready), spares \(spares)")
        }
    }

    @Test("a thread that does not stay awake never looks: every wake-up writes, and each makes a run")
    func noStayAwakeMeansAWriteEachTime() throws {
        let runs = Runs()
        let thread = try ReplenishingThread(name: "test-replenish", delay: .milliseconds(5), stayAwake: .zero) { _ in
            runs.count.add(1, ordering: .relaxed)
        }
        defer { thread.stop() }
        for wakeUp in 1...3 {
            thread.wake()
            #expect(Self.waitForRuns(runs, wakeUp))
            #expect(!thread.isLookingEveryDelay)
            #expect(thread.wakeUpWrites == wakeUp)
        }
    }

    @Test("while it looks, the thread's timer slack is its delay",
          .enabled(if: geteuid() == 0, "reading another thread's /proc/<tid>/timerslack_ns needs CAP_SYS_NICE: run as root"))
    func looksHaveASlackOfTheDelay() throws {
        let runs = Runs()
        let thread = try ReplenishingThread(name: "test-replenish", delay: .milliseconds(20), stayAwake: .seconds(30)) { _ in
            runs.count.add(1, ordering: .relaxed)
        }
        defer { thread.stop() }
        thread.wake()
        #expect(Self.waitForRuns(runs, 1))
        let id = try #require(thread.kernelThreadID)
        let slack = { try? readProcFile(FilePath("/proc/\(id)/timerslack_ns")).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(waitUntil { thread.isLookingEveryDelay && slack() == "20000000" }, "looking, with a slack of 20 ms")
    }
}
