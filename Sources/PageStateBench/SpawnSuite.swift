import CPageState
import Glibc
import PageStateSandbox
import SystemPackage

/// `pagestate bench spawn`: how long a new worker takes from request to ready (forked by the
/// launcher ahead or on demand, confined, its socket answering, its mailbox sent) with 1, 100 and 1,000 workers already alive, next to a
/// bare fork of this process measured in the same run, and the one-time start of the launcher.
public enum SpawnSuite {
    /// Pause between paced spawns: long enough for the launcher to fork the next spare.
    static let pace: Duration = .milliseconds(5)

    public static func run(worker: FilePath, liveCounts: [Int] = [1, 100, 1000], samples: Int = 200) throws -> BenchReport {
        var report = BenchReport(suite: "spawn")
        var configuration = SandboxConfiguration(workerExecutable: worker)
        configuration.maximumLiveWorkers = (liveCounts.max() ?? 1) + 10
        configuration.idleTimeout = .seconds(3600)
        let pool = SandboxPool(configuration: configuration, budget: MemoryBudget(pages: 0))
        defer { pool.shutDown() }
        var nextID: UInt64 = 1
        func newGuest() throws -> Guest {
            nextID += 1
            return try Guest(id: nextID, heapCapacityInPages: 16, stableCapacityInPages: 16)
        }
        // The pool's first spawn starts the launcher and waits for its first fork.
        let first = try newGuest()
        let launcherStart = ContinuousClock.now
        try pool.warmUp(first)
        report.figures["launcher_start_ms"] = milliseconds(since: launcherStart)
        pool.evict(first)
        var live: [Guest] = []
        var worst = (p50: 0.0, p99: 0.0)
        var p99AtFirst = 0.0, p99AtLast = 0.0
        for count in liveCounts.sorted() {
            // Bring the pool to count - 1 live workers; each sample spawns the count-th and evicts it.
            while live.count < count - 1 {
                let guest = try newGuest()
                try pool.warmUp(guest)
                live.append(guest)
            }
            pool.maintain()  // the pool's first look at the new workers' memory (/proc, once each), not a spawn's cost
            var latencies: [Double] = [], burst: [Double] = []
            for sample in 0..<(2 * samples) {
                let paced = sample < samples
                if paced { try pause(pace) }
                let guest = try newGuest()
                let start = ContinuousClock.now
                try pool.warmUp(guest)
                if paced { latencies.append(milliseconds(since: start)) } else { burst.append(milliseconds(since: start)) }
                pool.evict(guest)
            }
            latencies.sort()
            burst.sort()
            report.figures["spawn_burst_p50_ms_at_\(count)"] = burst[burst.count / 2]
            report.figures["spawn_burst_p99_ms_at_\(count)"] = burst[min(burst.count - 1, burst.count * 99 / 100)]
            let p50 = latencies[latencies.count / 2], p99 = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
            report.figures["spawn_p50_ms_at_\(count)"] = p50
            report.figures["spawn_p99_ms_at_\(count)"] = p99
            worst = (max(worst.p50, p50), max(worst.p99, p99))
            if count == liveCounts.min() { p99AtFirst = p99 }
            if count == liveCounts.max() { p99AtLast = p99 }
        }
        report.figures["spawn_p50_ms"] = worst.p50
        report.figures["spawn_p99_ms"] = worst.p99
        report.figures["spawn_p99_\(liveCounts.max()!)_vs_\(liveCounts.min()!)"] = p99AtLast / p99AtFirst
        var forks = (0..<samples).map { _ in ps_bare_fork_us() / 1000 }
        forks.sort()
        report.figures["bare_fork_p50_ms"] = forks[forks.count / 2]
        report.figures["bare_fork_p99_ms"] = forks[forks.count * 99 / 100]
        report.notes.append("spawn = the pool warming up a new guest: a spare taken (or a fork asked of the launcher) until the confined worker said it is ready and was sent its mailbox; spawn_p50_ms and spawn_p99_ms are the worst over \(liveCounts)")
        report.notes.append("paced spawns (\(pace) apart: a spare is in hand) vs burst spawns back to back (once the spares are used, each waits for a fork)")
        report.notes.append("launcher_start_ms = the pool's first spawn: starting the launcher, then its first fork (once per pool)")
        report.notes.append("bare fork = fork + _exit + waitpid of this (larger, multithreaded) benchmark process, not of the small launcher")
        return report
    }

    static func pause(_ duration: Duration) throws {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 { request = remaining }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15
    }
}
