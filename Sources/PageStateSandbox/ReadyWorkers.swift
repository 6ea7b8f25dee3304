import CPageState
import DequeModule
import PageStateKernel
import Synchronization
import SystemPackage

/// Workers spawned ahead for the pool's next new guests (`SandboxConfiguration.readyWorkers`): taken
/// under the pool's lock (with this list's own lock inside it), a ready worker is a new guest's at
/// once — no launcher chosen, no launcher lock, no host objects made on the spawn's path
/// (performance.md, session 39). A background thread, woken by the takes that leave fewer than
/// half, makes the current launcher's spares in hand into ready workers (`Launcher.spareInHand()`,
/// `WorkerProcess(_:from:timeout:)`), so that the launcher's lock, the spare's handover and the
/// host's objects for it are paid off the path. It asks for no fork of its own and takes a spare only
/// while the launcher holds at least half its spares (a spawn that waits for forks would otherwise
/// wait for the thread's as well, or for the spares it took): with no spare to take it looks again every
/// `refillDelay` while the launcher has spares on their way (within `spawnTimeout`), and a few times
/// more when none is (`looksForSpares`), then stops until a take wakes it again.
///
/// A ready worker counts as a worker of its launcher (it holds its reservation) but not as a live
/// worker of the pool: not against `maximumLiveWorkers`, the RSS budget or the idle timeout. The
/// oldest is taken first, so none waits long while spawns come; the pool's maintenance terminates
/// those that exited and those whose launcher is no longer one spawns use (`takeWorkers(notFrom:)`),
/// so that they do not keep it running.
///
/// Invariant: every worker in `State.workers` said `ready`, was sent its mailbox and has run no
/// guest code; none is used by anyone until taken.
final class ReadyWorkers: Sendable {
    private let state = Mutex(State())
    /// The address of the oldest ready worker's death notice (0: none), beside the lock, which
    /// `take()` prefetches before it takes the lock; set under the lock whenever the oldest worker
    /// changes (`publishOldest`).
    private let oldestDeathNotice = Atomic<UInt>(0)
    private let target: Int  // read by every take: on the prefetched line too
    private let replenishing: OnDemandReplenishingThread
    private let launchers: Launchers
    private let spawnTimeout: Duration
    private let refillDelayMilliseconds: Int32
    /// How many times a run looks for a spare in hand, while none is on its way, before it stops.
    static let looksForSpares = 5

    /// A ready worker and its death notice, kept beside it: a take reads the notice without
    /// touching the worker's object: one memory read where `WorkerProcess.hasExited` makes a chain of
    /// four (each ~0.5 µs when cold, as a paced spawn's memory is: performance.md, session 41).
    private struct Entry {
        let worker: WorkerProcess
        /// `worker.deathNotice` (valid: the worker keeps its channel, whose mailbox is never replaced).
        let deathNotice: SharedMailbox.DeathNotice?

        init(_ worker: WorkerProcess) {
            self.worker = worker
            deathNotice = worker.deathNotice
        }

        /// `worker.hasExited`, from the kept notice while one is linked.
        var hasExited: Bool {
            switch deathNotice?.workerLife {
            case .alive?: false
            case .dead?: true
            case .unknown?, nil: worker.hasExited  // asks the pidfd
            }
        }
    }

    private struct State {
        var workers: Deque<Entry> = []
        /// Whether the thread was woken and has not started its run yet (later takes need not wake it).
        var woken = false
        /// Set by `shutDown`: nothing is kept or handed out afterwards.
        var closed = false
    }

    /// Ready workers for a pool configured by `configuration` (none when it keeps no spares: there
    /// would be nothing to make ready), made `refillDelay` after a wake-up.
    init(launchers: Launchers, configuration: SandboxConfiguration, refillDelay: Duration = Launcher.replenishDelay) {
        self.launchers = launchers
        target = configuration.keepsReadyWorkers ? configuration.readyWorkers : 0
        spawnTimeout = configuration.spawnTimeout
        refillDelayMilliseconds = Int32(max(1, Launcher.milliseconds(refillDelay)))
        replenishing = OnDemandReplenishingThread(name: "pagestate-ready", delay: refillDelay,
                                                  stayAwake: Launcher.replenishingStaysAwake)
    }

    /// The oldest ready worker not known to have exited (`WorkerProcess.hasExited`), if any; the
    /// exited ones found on the way, for the caller to terminate outside its locks; and whether the
    /// caller is to `wake()` the thread once out of its locks (fewer than half are left: the claim is
    /// marked, so that the takes until the thread runs do not wake it again).
    ///
    /// - Complexity: O(1) plus the exited ones found (each may cost a `poll` while its death notice
    ///   is not linked).
    func take() -> (worker: WorkerProcess?, exited: [WorkerProcess], wake: Bool) {
        guard target > 0 else { return (nil, [], false) }
        // Arrives while the lock is taken and the list read. The address may be stale (a worker
        // taken meanwhile, its mailbox unmapped): a prefetch reads nothing and never faults.
        ps_prefetch(UnsafeRawPointer(bitPattern: oldestDeathNotice.load(ordering: .relaxed)))
        return state.withLock { state in
            var exited: [WorkerProcess] = []
            var taken: WorkerProcess?
            while !state.closed, let entry = state.workers.popFirst() {
                if entry.hasExited { exited.append(entry.worker) } else { taken = entry.worker; break }
            }
            publishOldest(state)
            let wake = !state.closed && !state.woken && state.workers.count < (target + 1) / 2
            if wake { state.woken = true }
            return (taken, exited, wake)
        }
    }

    /// Starts bringing into the cache, without waiting for it, what a `take()` reads first: this
    /// object's first 64 bytes (its lock, and the address of the oldest worker's death notice,
    /// which `take()` then prefetches). A spawn calls it before it takes the pool's lock, so that
    /// the line arrives while the spawn looks up its guest, instead of after it (a paced spawn's
    /// memory is cold: each dependent read ~0.5 µs, performance.md, session 41).
    ///
    /// - Complexity: O(1): two prefetches, no load, no lock.
    func prefetchForTake() {
        let object = UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque())
        ps_prefetch(object)
        ps_prefetch(object + 63)  // the object may straddle two lines
    }

    /// The published address and the oldest ready worker's death notice's (0 with none), which
    /// every change to the list leaves equal (for tests).
    var publishedDeathNotice: (published: UInt, oldest: UInt) {
        state.withLock { (oldestDeathNotice.load(ordering: .relaxed), $0.workers.first?.deathNotice?.address ?? 0) }
    }

    /// Publishes where the oldest ready worker's death notice is, after a change to the list.
    private func publishOldest(_ state: borrowing State) {
        oldestDeathNotice.store(state.workers.first?.deathNotice?.address ?? 0, ordering: .relaxed)
    }

    /// Wakes the thread after `take()` said so (creating it first, if it is not running); its run
    /// makes spares in hand ready until there are `readyWorkers`.
    ///
    /// - Complexity: O(1) (an atomic store while the thread is awake, else one `write`).
    func wake() {
        guard !replenishing.wake(work: { [self] in refill(wokenAgain: $0) }) else { return }
        state.withLock { $0.woken = false }  // no thread: the next take tries again
    }

    /// Makes the current launcher's spares in hand into ready workers until `target` are ready, one
    /// at a time; with none in hand, waits `refillDelay` and looks again — while spares are on their
    /// way until `spawnTimeout` has passed, else `Self.looksForSpares` times. Stops at the first
    /// failure (which a spawn that finds none ready then meets itself), once shut down, or once
    /// `wokenAgain` is readable (woken again: another run follows; or stopped).
    private func refill(wokenAgain: FileDescriptor) {
        var looksLeft = Self.looksForSpares
        let deadline = ContinuousClock.now + spawnTimeout
        while true {
            let wanted = state.withLock { state in
                state.woken = false  // a take from now on wakes the thread for one more run
                return !state.closed && state.workers.count < target
            }
            guard wanted else { return }
            let launcher = launchers.reserveForSpawn()
            let inHand = launcher.spareInHand()
            guard let spare = inHand.spare else {
                launcher.releaseWorker()
                if !inHand.coming { looksLeft -= 1 }
                guard looksLeft > 0, ContinuousClock.now < deadline,
                      (try? wokenAgain.waitReadable(timeoutMilliseconds: refillDelayMilliseconds)) == false else { return }
                continue
            }
            guard let worker = try? WorkerProcess(spare, from: launcher, timeout: spawnTimeout) else { return }
            let kept = state.withLock { state in
                guard !state.closed else { return false }
                state.workers.append(Entry(worker))
                publishOldest(state)
                return true
            }
            guard kept else {
                worker.terminate()
                return
            }
        }
    }

    /// Removes and returns, for the caller to terminate, the ready workers that exited (a restarted
    /// launcher's old ones, say) and those whose launcher is none of `kept` (the ones spawns use now):
    /// they would keep an otherwise idle launcher running.
    ///
    /// - Complexity: O(ready workers), each exited check at most one `poll`.
    func takeWorkers(notFrom kept: [Launcher]) -> [WorkerProcess] {
        state.withLock { state in
            let stale = state.workers.filter { entry in entry.hasExited || !kept.contains { $0 === entry.worker.launcher } }
            state.workers.removeAll { entry in stale.contains { $0.worker === entry.worker } }
            publishOldest(state)
            return stale.map(\.worker)
        }
    }

    /// Workers ready now.
    ///
    /// - Complexity: O(1).
    var count: Int { state.withLock { $0.workers.count } }

    /// Their pids, oldest first (for tests).
    ///
    /// - Complexity: O(ready workers).
    var processIDs: [ProcessID] { state.withLock { $0.workers.map(\.worker.pid) } }

    /// Hands out and keeps nothing more: terminates the ready workers, runs `stopLaunchers` (which
    /// ends a run's wait for a spare's `ready` or for a launcher's lock), then waits for the thread.
    /// Not from the thread itself.
    ///
    /// - Complexity: O(ready workers), plus the wait for a run under way.
    func shutDown(stoppingLaunchers stopLaunchers: () -> Void) {
        let workers = state.withLock { state in
            state.closed = true
            defer {
                state.workers = []
                publishOldest(state)
            }
            return state.workers.map(\.worker)
        }
        let thread = replenishing.close()
        for worker in workers { worker.terminate() }
        stopLaunchers()
        thread?.stop()
    }

    /// The thread, while it runs (for tests).
    var replenishingThread: ReplenishingThread? { replenishing.running }
}
