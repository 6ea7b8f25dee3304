import PageStateKernel
import Synchronization
import SystemPackage

/// Workers spawned ahead for the pool's next new guests (`SandboxConfiguration.readyWorkers`): taken
/// under the pool's lock, a ready worker is a new guest's at once, with no launcher, no second lock
/// and no allocation on the spawn's path (performance.md, session 39). A background thread, woken by
/// the spawns that leave fewer than half, spawns replacements the usual way (`Launchers`,
/// `WorkerProcess`, a launcher's spare), so that the launcher's lock, the spare's handover and the
/// host's objects for it are paid off the path.
///
/// A ready worker counts as a worker of its launcher (it holds its reservation) but not as a live
/// worker of the pool: not against `maximumLiveWorkers`, the RSS budget or the idle timeout.
///
/// Invariant: every worker in `State.workers` said `ready` and was sent its mailbox; none is used
/// by anyone until taken.
final class ReadyWorkers: Sendable {
    private let launchers: Launchers
    private let target: Int
    private let spawnTimeout: Duration
    private let state = Mutex(State())
    private let replenishing = OnDemandReplenishingThread(delay: Launcher.replenishDelay, stayAwake: Launcher.replenishingStaysAwake)

    private struct State: @unchecked Sendable {  // the workers are nobody's until taken
        var workers: [WorkerProcess] = []
        /// Whether the thread was woken and has not started its run yet (later spawns need not wake it).
        var woken = false
        /// Set by `close()`: nothing is kept or handed out afterwards.
        var closed = false
    }

    init(launchers: Launchers, configuration: SandboxConfiguration) {
        self.launchers = launchers
        target = max(0, configuration.readyWorkers)
        spawnTimeout = configuration.spawnTimeout
    }

    /// The newest ready worker whose death notice does not say it died, if any; the dead ones found
    /// on the way, for the caller to terminate (outside its locks); and whether the caller is to
    /// `wake()` the thread once out of its locks (fewer than half are left: the claim is marked,
    /// so that the spawns until the thread runs do not wake it again).
    ///
    /// A worker that died without a death notice (`SharedMailbox.WorkerLife.unknown`) is handed out:
    /// its first execution finds out and runs on a new worker, as for a worker that died while idle.
    ///
    /// - Complexity: O(1) plus the dead ones found.
    func take() -> (worker: WorkerProcess?, dead: [WorkerProcess], wake: Bool) {
        state.withLock { state in
            var dead: [WorkerProcess] = []
            var taken: WorkerProcess?
            while !state.closed, let worker = state.workers.popLast() {
                if worker.deathNoticed { dead.append(worker) } else { taken = worker; break }
            }
            let wake = !state.closed && !state.woken && state.workers.count < (target + 1) / 2
            if wake { state.woken = true }
            return (taken, dead, wake)
        }
    }

    /// Wakes the thread after `take()` said so; it spawns workers until `readyWorkers` are ready
    /// (starting first, if it is not running yet).
    func wake() {
        guard !replenishing.wake(work: { [self] _ in refill() }) else { return }
        state.withLock { $0.woken = false }  // no thread: the next spawn tries again
    }

    /// Makes workers of the launchers' spares in hand until `target` are ready, one at a time; stops
    /// once the launcher has no spare in hand (the spawns then waiting for forks are not made to wait
    /// for this thread's as well: the next take wakes it again), at the first failure (which the next
    /// spawn that finds none ready meets itself), or once closed.
    private func refill() {
        while true {
            let wanted = state.withLock { state in
                state.woken = false  // a spawn from now on wakes the thread for one more run
                return !state.closed && state.workers.count < target
            }
            guard wanted else { return }
            let launcher = launchers.reserveForSpawn()
            guard let spare = launcher.spareInHand() else {
                launcher.releaseWorker()
                return
            }
            guard let worker = try? WorkerProcess(spare, from: launcher, timeout: spawnTimeout) else { return }
            let kept = state.withLock { state in
                guard !state.closed else { return false }
                state.workers.append(worker)
                return true
            }
            guard kept else {
                worker.terminate()
                return
            }
        }
    }

    /// Workers ready now.
    var count: Int { state.withLock { $0.workers.count } }
    /// Their pids, oldest first (for tests).
    var processIDs: [ProcessID] { state.withLock { $0.workers.map(\.pid) } }

    /// Hands out nothing more and returns the ready workers, for the caller to terminate, and the thread,
    /// for the caller to `stop()` once the launchers are stopped (a run under way may wait for a fork).
    func close() -> (workers: [WorkerProcess], thread: ReplenishingThread?) {
        let workers = state.withLock { state in
            state.closed = true
            defer { state.workers = [] }
            return state.workers
        }
        return (workers, replenishing.close())
    }

    /// The thread, while it runs (for tests).
    var replenishingThread: ReplenishingThread? { replenishing.running }
}
