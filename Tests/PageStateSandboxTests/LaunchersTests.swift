@testable import PageStateSandbox
import Foundation
import Glibc
import PageStateKernel
import SystemPackage
import Testing

/// Pools here spawn no workers ahead (`readyWorkers = 0`): every launcher's workers are the guests'.
@Suite("Launchers: live workers spread over launchers that run private copies of the executable")
struct LaunchersTests {
    /// The parent (launcher) of process `pid` and the inode of the executable it runs.
    static func launcherAndExecutable(of pid: pid_t) throws -> (launcher: pid_t, inode: UInt64) {
        let parent = try #require(pid_t(try statFields(of: ProcessID(rawValue: pid))[1]))
        var info = stat()
        guard stat("/proc/\(pid)/exe", &info) == 0 else { throw Errno(rawValue: errno) }  // follows the link to the file
        let inode = UInt64(info.st_ino)
        return (parent, inode)
    }

    static func guests(_ ids: ClosedRange<UInt64>) throws -> [Guest] {
        try ids.map { try Guest(id: $0, heapCapacityInPages: 16, stableCapacityInPages: 16) }
    }

    /// The pool's statistics once every launcher but the first has run its copy or given up on it (the
    /// one made ahead does so on its own thread).
    static func onceNextLauncherTriedItsCopy(_ pool: SandboxPool) throws -> SandboxPool.Statistics {
        try #require(waitUntil {
            let statistics = pool.statistics
            return statistics.launcherExecutableCopies + statistics.executableCopyFailures == statistics.launchers - 1
        }, "the launcher made ahead started")
        return pool.statistics
    }

    @Test("past workersPerLauncher a new launcher runs its own copy; launchers left without workers stop; a guest's state survives its move")
    func workersSpreadOverCopies() throws {
        let pool = makePool { $0.workersPerLauncher = 3; $0.spareWorkers = 1; $0.readyWorkers = 0 }
        defer { pool.shutDown() }
        let guests = try Self.guests(1...10)
        for guest in guests { _ = try pool.execute(guest, request("counter.increment", guest: guest.id)) }
        #expect(pool.statistics.launchers == 4)
        #expect(pool.statistics.launcherExecutableCopies == 3)
        var byLauncher: [pid_t: (workers: Int, inodes: Set<UInt64>)] = [:]
        for guest in guests {
            let (launcher, inode) = try Self.launcherAndExecutable(of: try #require(pool.workerProcessID(of: guest)).rawValue)
            byLauncher[launcher, default: (0, [])].workers += 1
            byLauncher[launcher]!.inodes.insert(inode)
        }
        #expect(byLauncher.values.map(\.workers).sorted() == [1, 3, 3, 3], "at most 3 workers per launcher")
        for (launcher, forked) in byLauncher {
            #expect(forked.inodes == [try Self.launcherAndExecutable(of: launcher).inode], "a worker runs its launcher's executable")
        }
        #expect(Set(byLauncher.values.flatMap(\.inodes)).count == 4, "each launcher runs a file of its own")
        // The first nine workers go: their three launchers stop at the next maintenance pass.
        let last = try Self.launcherAndExecutable(of: try #require(pool.workerProcessID(of: guests[9])).rawValue).launcher
        for guest in guests.prefix(9) { pool.evict(guest) }
        pool.maintain()
        #expect(pool.statistics.launchers == 1)
        for launcher in byLauncher.keys where launcher != last {
            #expect(kill(launcher, 0) == -1 && errno == ESRCH, "launcher \(launcher) stopped and reaped")
        }
        // Their guests carry on, from the launcher left (two more fit) and then one made ahead, which
        // runs a copy kept from those stopped.
        for guest in guests.prefix(3) {
            #expect(u64(try pool.execute(guest, request("counter.increment", guest: guest.id)).output) == 2)
        }
        #expect(pool.statistics.launchers == 2)
        #expect(pool.statistics.launcherCopiesReused == 1)
        #expect(pool.statistics.executableCopyFailures == 0, "\(pool.statistics.lastExecutableCopyFailure ?? "")")
    }

    @Test("once the current launcher is full, spawns go back to one with fewer than half as many workers before a new copy is made")
    func spawnsReuseALauncherWithRoom() throws {
        let pool = makePool { $0.workersPerLauncher = 4; $0.spareWorkers = 1; $0.readyWorkers = 0 }
        defer { pool.shutDown() }
        let guests = try Self.guests(1...9)
        for guest in guests.prefix(8) { try pool.warmUp(guest) }
        #expect(pool.statistics.launchers == 3, "two full, and one made ahead")
        let first = try Self.launcherAndExecutable(of: try #require(pool.workerProcessID(of: guests[0])).rawValue).launcher
        for guest in guests.prefix(3) { pool.evict(guest) }  // the first launcher keeps 1 of 4
        try pool.warmUp(guests[8])
        #expect(pool.statistics.launchers == 3, "no new launcher")
        #expect(try Self.launcherAndExecutable(of: try #require(pool.workerProcessID(of: guests[8])).rawValue).launcher == first)
    }

    @Test("the next launcher is started, its copy made and its spares forked before the current one is full; it stops once not needed soon")
    func nextLauncherMadeAhead() throws {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.workersPerLauncher = 4
        configuration.spareWorkers = 2
        let launchers = Launchers(configuration: configuration)
        defer { launchers.shutDown() }
        func spawn(_ guest: UInt64) throws -> WorkerProcess {
            try WorkerProcess(launcher: launchers.reserveForSpawn(), timeout: .seconds(5))
        }
        var first = try (UInt64(1)...2).map(spawn)
        #expect(launchers.next == nil, "2 of 4 workers: none made ahead yet")
        first.append(try spawn(3))
        let next = try #require(launchers.next, "3 of 4: the next launcher is made")
        #expect(waitUntil { next.greetedSpares == 2 }, "started with its spares ready before any spawn asked it")
        #expect(next.runsCopy)
        let nextPID = try #require(next.processID)
        #expect(sched_getscheduler(nextPID.rawValue) == SCHED_OTHER, "started from the batch-scheduled replenishing thread, yet not batch")
        first.append(try spawn(4))
        #expect(launchers.next === next && next.workerCount == 0, "the current launcher takes its fourth")
        var second = [try spawn(5)]
        #expect(try Self.launcherAndExecutable(of: second[0].pid.rawValue).launcher == next.processID?.rawValue, "the fifth goes to the launcher made ahead")
        #expect(sched_getscheduler(second[0].pid.rawValue) == SCHED_OTHER, "nor its workers")
        #expect(launchers.next == nil)
        #expect(next.greetedSpares == 1 && next.restarts == 0, "it took a spare: no fork, no start")
        second += try (UInt64(6)...7).map(spawn)
        let third = try #require(launchers.next, "the one after is made once the second has 3")
        #expect(waitUntil { third.processID != nil })
        let thirdPID = try #require(third.processID)
        for worker in second.suffix(2) { worker.terminate() }
        launchers.retireIdle()
        #expect(launchers.next == nil && launchers.counts.launchers == 2, "1 of 4 in the current one: the next one stops")
        #expect(kill(thirdPID.rawValue, 0) == -1 && errno == ESRCH, "its process was stopped and reaped")
        for worker in first + second { worker.terminate() }
    }

    @Test("a stopped launcher's copy of the executable is run by the next new launcher instead of a new copy, and dropped once kept for the idle timeout")
    func retiredCopyIsReused() throws {
        var configuration = SandboxConfiguration(workerExecutable: workerExecutable)
        configuration.workersPerLauncher = 2  // the next launcher is made at the current one's first worker
        configuration.spareWorkers = 1
        configuration.idleTimeout = .milliseconds(200)
        let launchers = Launchers(configuration: configuration)
        defer { launchers.shutDown() }
        func spawn(_ guest: UInt64) throws -> WorkerProcess {
            try WorkerProcess(launcher: launchers.reserveForSpawn(), timeout: .seconds(5))
        }
        /// The inode of the executable the launcher made ahead runs, once it has started.
        func nextLaunchersExecutable() throws -> UInt64 {
            let next = try #require(launchers.next)
            #expect(waitUntil { next.processID != nil && next.greetedSpares == 1 }, "the launcher made ahead started")
            return try Self.launcherAndExecutable(of: try #require(next.processID).rawValue).inode
        }
        let first = try (UInt64(1)...2).map(spawn)  // the first launcher (the original executable) is full
        defer { for worker in first { worker.terminate() } }
        let second = try spawn(3)  // from the launcher made ahead; the third is made
        let thirdCopy = try nextLaunchersExecutable()
        second.terminate()
        launchers.retireIdle()  // the second launcher has none left: the third stops, its copy kept
        #expect(launchers.counts.launchers == 2 && launchers.retiredCopies.kept == 1)
        let again = try spawn(4)  // the second launcher's first worker: the next is made again
        defer { again.terminate() }
        #expect(try nextLaunchersExecutable() == thirdCopy, "the new launcher runs the stopped one's copy")
        #expect(launchers.retiredCopies == (kept: 0, reused: 1))
        #expect(launchers.counts.copies == 2 && launchers.copyFailures.count == 0)
        // Stopped again; kept past the idle timeout, the copy is dropped.
        again.terminate()
        launchers.retireIdle()
        #expect(launchers.retiredCopies.kept == 1)
        usleep(300_000)
        launchers.retireIdle()
        #expect(launchers.retiredCopies.kept == 0, "dropped after the idle timeout")
    }

    @Test("a failed spawn leaves its launcher's count as it was")
    func failedSpawnReleasesItsReservation() throws {
        var configuration = SandboxConfiguration(workerExecutable: "/nonexistent-pagestate-worker")
        configuration.workersPerLauncher = 1
        let launchers = Launchers(configuration: configuration)
        defer { launchers.shutDown() }
        for _ in 1...3 {
            let launcher = launchers.reserveForSpawn()
            #expect(throws: ExecutionError.self) { _ = try WorkerProcess(launcher: launcher, timeout: .seconds(5)) }
            #expect(launcher.workerCount == 0)
        }
        #expect(launchers.counts.launchers == 2, "the current launcher never filled up: no other but the one made ahead")
    }

    @Test("a copy in a directory that forbids executables is reported, and its launcher runs the original",
          .enabled(if: geteuid() == 0, "needs root to mount a noexec tmpfs"))
    func noexecCopyFallsBack() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("noexec-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try #require(mount("tmpfs", directory, "tmpfs", UInt(MS_NOEXEC), "size=64m") == 0, "mounting a noexec tmpfs: \(Errno(rawValue: errno))")
        defer { umount(directory) }
        let pool = makePool { $0.workersPerLauncher = 1; $0.spareWorkers = 1; $0.readyWorkers = 0; $0.executableCopyDirectory = FilePath(directory) }
        defer { pool.shutDown() }
        for guest in try Self.guests(1...2) {
            #expect(u64(try pool.execute(guest, request("counter.increment", guest: guest.id)).output) == 1)
        }
        let statistics = try Self.onceNextLauncherTriedItsCopy(pool)
        #expect(statistics.launchers == 3 && statistics.launcherExecutableCopies == 0, "two in use, one made ahead")
        #expect(statistics.executableCopyFailures == 2)
        #expect(statistics.lastExecutableCopyFailure?.contains("starting a copy") == true, "\(statistics.lastExecutableCopyFailure ?? "")")
    }

    @Test("a copy that cannot be made is reported, and its launcher runs the original")
    func copyFailureFallsBack() throws {
        let pool = makePool { $0.workersPerLauncher = 1; $0.spareWorkers = 1; $0.readyWorkers = 0; $0.executableCopyDirectory = "/nonexistent-pagestate-directory" }
        defer { pool.shutDown() }
        for guest in try Self.guests(1...3) {
            #expect(u64(try pool.execute(guest, request("counter.increment", guest: guest.id)).output) == 1)
        }
        let statistics = try Self.onceNextLauncherTriedItsCopy(pool)
        #expect(statistics.launchers == 4, "three in use, one made ahead")
        #expect(statistics.launcherExecutableCopies == 0)
        #expect(statistics.executableCopyFailures == 3)
        #expect(statistics.lastExecutableCopyFailure?.contains("/nonexistent-pagestate-directory") == true)
    }
}
