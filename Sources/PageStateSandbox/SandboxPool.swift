import Dispatch
import PageStateKernel
import PageStateMemory
import Synchronization
import SystemPackage

/// Runs every guest in its own worker process: forked by a launcher, confined by seccomp, with the
/// guest's memories mapped zero-copy. An update's changed pages come back in a sealed file that the
/// host validates and adopts without copying. Workers stay alive between executions (they only
/// remap what changed) until they are idle too long, the pool is full, or the RSS budget is
/// exceeded; an evicted guest's next execution transparently gets a new worker.
public final class SandboxPool: GuestExecutor {
    // What a spawn reads first, first: on a paced spawn, whose memory is cold, fields on the same
    // cache lines cost one miss (performance.md, session 41).
    /// Workers spawned ahead for new guests (taken under `state`'s lock: it is never taken the other way round).
    private let ready: ReadyWorkers
    /// `configuration.maximumLiveWorkers`, here rather than past the whole configuration.
    private let maximumLiveWorkers: Int
    private let state: Mutex<PoolState>
    public let configuration: SandboxConfiguration
    private let launchers: Launchers
    private let budget: MemoryBudget
    /// `configuration.spinBeforeSleeping` as every execute message says it (worked out once).
    private let workerSpinMicroseconds: UInt32
    /// `configuration.idleTimeout`, for comparisons with `MonotonicInstant` readings.
    private let idleTimeoutNanoseconds: UInt64
    private let hostCall: HostCallHandler
    /// Set up in `init`, cancelled in `deinit`; never touched in between (hence safe to share).
    private nonisolated(unsafe) let maintenance: DispatchSourceTimer

    /// Counts and latencies the pool has seen.
    public struct Statistics: Sendable, Hashable {
        public var liveWorkers = 0
        public var spawned = 0
        public var executions = 0
        public var evictedIdle = 0
        public var evictedLeastRecentlyUsed = 0
        public var evictedForMemory = 0
        /// Workers discarded because they crashed, were killed or misbehaved.
        public var discarded = 0
        public var launcherRestarts = 0
        /// Launchers not stopped yet (`SandboxConfiguration.workersPerLauncher`): with workers, idle
        /// until the next maintenance pass, current (1 in a new pool, before its first spawn), or made
        /// ahead for when the current one is full; and
        /// how many of them run a private copy of the worker executable.
        public var launchers = 0
        public var launcherExecutableCopies = 0
        /// New launchers given a copy kept from a stopped launcher to run instead of making one.
        public var launcherCopiesReused = 0
        /// Launchers that run the original executable because their copy could not be made or run,
        /// and why the last one could not.
        public var executableCopyFailures = 0
        public var lastExecutableCopyFailure: String?
        /// Forked workers waiting to be taken by a spawn, or asked of a launcher (up to `spareWorkers`
        /// per launcher), plus the pool's ready workers (up to `readyWorkers`).
        public var spareWorkers = 0
        /// Times a launcher's spares ran low and a batch was asked for (by a spawn, or by the thread
        /// that makes spares into ready workers), or a launcher made ahead asked for its first ones.
        public var spareRefills = 0
        /// Updates that got a result file prepared in the background.
        public var preparedResultFiles = 0
        /// Waits for a worker's message that found the worker on the waiting thread's processor (the
        /// thread then yields to it at once; the worker moves to another processor when it waits).
        public var waitsBesideWorker = 0
        /// Median and 99th percentile of recent spawns (request to ready), in microseconds: from the
        /// pool finding no worker for the guest (after evicting one, if it was full) until it has
        /// one — a ready worker (taken within the pool's lock), or one spawned then. The
        /// spawn of a worker still busy with its first execution counts once that execution ends.
        public var spawnP50Microseconds = 0.0
        public var spawnP99Microseconds = 0.0
        /// Median and 99th percentile of recent executions, in microseconds.
        public var executionP50Microseconds = 0.0
        public var executionP99Microseconds = 0.0
    }

    struct PoolState: @unchecked Sendable {  // worker objects are used only by their busy owner
        var closed = false  // read first, beside the lock
        var workers: PoolWorkers<WorkerProcess>
        var statistics = Statistics()
        var executionSamples = LatencySamples()
    }

    /// A pool that runs `configuration.workerExecutable`; growth is charged against `budget`; guests'
    /// host calls go to `hostCall`.
    public init(configuration: SandboxConfiguration, budget: MemoryBudget, hostCall: @escaping HostCallHandler = { _, _ in [] }) {
        self.configuration = configuration
        self.budget = budget
        self.hostCall = hostCall
        workerSpinMicroseconds = UInt32(min(max(0, configuration.spinBeforeSleeping / .microseconds(1)), Double(ExecuteMessage.maximumSpinMicroseconds)).rounded())
        idleTimeoutNanoseconds = MonotonicInstant.nanoseconds(in: configuration.idleTimeout)
        maximumLiveWorkers = configuration.maximumLiveWorkers
        state = Mutex(PoolState(workers: PoolWorkers(expectedWorkers: configuration.maximumLiveWorkers)))
        launchers = Launchers(configuration: configuration)
        ready = ReadyWorkers(launchers: launchers, configuration: configuration)
        maintenance = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "pagestate.sandbox.maintenance"))
        let interval = min(configuration.idleTimeout / 2, .seconds(1))
        maintenance.schedule(deadline: .now() + .milliseconds(Launcher.milliseconds(interval)),
                             repeating: .milliseconds(max(1, Launcher.milliseconds(interval))))
        maintenance.setEventHandler { [weak self] in self?.maintain() }
        maintenance.resume()
    }

    deinit {
        maintenance.cancel()
        shutDown()
    }

    /// Terminates every worker and the launchers. Later executions fail with `spawnFailed`.
    public func shutDown() {
        let workers = state.withLock { state in
            state.closed = true
            return state.workers.removeAll()
        }
        for worker in workers { worker.terminate() }
        ready.shutDown { launchers.shutDown() }
    }

    public var statistics: Statistics {
        var statistics = state.withLock { state in
            var statistics = state.statistics
            statistics.liveWorkers = state.workers.count
            state.workers.flushSpawnLatencies()
            (statistics.spawnP50Microseconds, statistics.spawnP99Microseconds) = state.workers.spawnLatencies.percentiles()
            (statistics.executionP50Microseconds, statistics.executionP99Microseconds) = state.executionSamples.percentiles()
            return statistics
        }
        // Outside the pool's lock: a launcher's lock can be held by a spawn for a while.
        statistics.launcherRestarts = launchers.restarts
        statistics.spareWorkers = launchers.sparesInHandOrAsked + ready.count
        statistics.spareRefills = launchers.refills
        (statistics.launchers, statistics.launcherExecutableCopies) = launchers.counts
        statistics.launcherCopiesReused = launchers.retiredCopies.reused
        (statistics.executableCopyFailures, statistics.lastExecutableCopyFailure) = launchers.copyFailures
        return statistics
    }

    /// The pid of the launcher the next spawn uses (for tests and diagnostics).
    public var launcherProcessID: ProcessID? { launchers.processID }

    /// The pids of the workers spawned ahead for new guests, oldest first (for tests).
    var readyWorkerProcessIDs: [ProcessID] { ready.processIDs }

    /// How many workers the index of slots holds before it grows (for tests).
    var workerIndexCapacity: Int { state.withLock { $0.workers.slots.capacity } }

    /// The pid of the worker serving `guest`, if one is alive.
    public func workerProcessID(of guest: Guest) -> ProcessID? { state.withLock { $0.workers[guest.id]?.worker.pid } }

    // MARK: Execution

    public func execute(_ guest: Guest, _ request: ExecutionRequest) throws(ExecutionError) -> ExecutionOutcome {
        try guest.serialized { () throws(ExecutionError) -> ExecutionOutcome in
            let started = MonotonicInstant.now
            var mayRetry = true
            while true {
                let worker = try checkOut(guest).worker
                do throws(ExecutionError) {
                    let outcome = try run(request, of: guest, in: worker)
                    checkIn(worker, guest: guest, healthy: true, started: started)
                    return outcome
                } catch {
                    // A worker that died while idle (killed from outside, out of memory) never saw
                    // the request: it runs on a new worker, transparently. Found out here rather
                    // than by polling every worker's pidfd before its execution (~0.6 µs each).
                    let retry = mayRetry && worker.diedBeforeTakingRequest
                    checkIn(worker, guest: guest, healthy: error.isDeterministic, started: retry ? nil : started)
                    guard retry else { throw error }
                    mayRetry = false
                }
            }
        }
    }

    private func run(_ request: ExecutionRequest, of guest: Guest, in worker: WorkerProcess) throws(ExecutionError) -> ExecutionOutcome {
        let (heap, stable) = guest.versions
        var sync = try MemorySync(worker: worker, heap: heap, heapCapacity: guest.heapCapacityInPages,
                                  stable: stable, stableCapacity: guest.stableCapacityInPages)
        defer { sync.close() }
        if request.kind == .update { prepareResultFile(of: worker, sync: &sync) }
        var granted = request
        granted.memoryAllowancePages = request.kind == .update ? budget.reserve(request.memoryAllowancePages) : request.memoryAllowancePages
        var used: UInt64 = 0
        defer { if request.kind == .update { budget.settle(granted: granted.memoryAllowancePages, used: used) } }
        var message = ExecuteMessage(requestID: 0, request: granted, files: sync.files, heap: sync.heap, stable: sync.stable)
        message.spinMicroseconds = workerSpinMicroseconds
        let handler = hostCall
        let (result, file) = try worker.execute(consume message, descriptors: sync.descriptors, limits: configuration) { bytes in
            do { return .answered(try handler(guest, bytes)) } catch { return .failed("\(error)") }
        }
        sync.close()
        worker.heldHeap = heap
        worker.heldStable = stable
        switch result {
        case .failure(let error):
            try? file?.close()
            // The worker rolled back: it still shows `heap` and `stable`.
            throw error
        case .success(let success):
            let (outcome, shown) = try ResultAdoption.adopt(success, file: file, kind: request.kind, guest: guest, from: (heap, stable),
                                                   allowance: granted.memoryAllowancePages,
                                                   maximumResultFiles: configuration.maximumResultFilesPerGuest)
            used = outcome.grownPages
            if let shown {
                (worker.heldHeap, worker.heldStable) = shown
                worker.lastResultPages = success.heapPages.count + success.stablePages.count
            }
            return outcome
        }
    }

    /// Hands the worker the result file prepared during its previous update, if ready, and starts
    /// preparing the next one (sized like the last result) while this execution runs.
    private func prepareResultFile(of worker: WorkerProcess, sync: inout MemorySync) {
        let minimum = configuration.preparedResultMinimumPages
        guard minimum > 0 else { return }
        if let file = worker.resultFile.take() {
            sync.handOver(resultFile: file)
            state.withLock { $0.statistics.preparedResultFiles += 1 }
        }
        if worker.lastResultPages >= minimum {
            worker.resultFile.prepare(pages: min(worker.lastResultPages, configuration.preparedResultMaximumPages))
        }
    }

    // MARK: Workers

    /// The guest's worker, marked busy: the live one, or a new one (evicting the least recently used
    /// idle worker first when the pool is full) — a ready one (`ReadyWorkers`) if there is one, else
    /// one spawned now. A new one is added idle instead if `newOneIdle` (`warmUp`, which then has
    /// nothing to check in); `isNew` says which it was.
    private func checkOut(_ guest: Guest, newOneIdle: Bool = false) throws(ExecutionError) -> (worker: WorkerProcess, isNew: Bool) {
        enum Found { case live(WorkerProcess), ready(WorkerProcess), none }
        ready.prefetchForTake()  // arrives while the lock is taken (a new guest's spawn reads it)
        // The evicted worker and the exited ready ones apart: joining them into one array cost a
        // spawn ~0.6 µs (performance.md, session 41).
        let (found, evicted, exited, wake) = try state.withLock { (state) throws(ExecutionError) -> (Found, WorkerProcess?, [WorkerProcess], Bool) in
            guard !state.closed else { throw .spawnFailed("the pool was shut down") }
            if let worker = state.workers.checkOut(guest.id) { return (.live(worker), nil, [], false) }
            var evicted: WorkerProcess?
            if state.workers.count >= maximumLiveWorkers, let victim = state.workers.idle.oldest?.guestID {
                state.statistics.evictedLeastRecentlyUsed += 1
                evicted = state.workers.remove(victim)
            }
            let started = MonotonicInstant.now
            let taken = ready.take()
            guard let worker = taken.worker else { return (.none, evicted, taken.exited, taken.wake) }
            let now = MonotonicInstant.now
            state.workers.add(worker, for: guest.id, at: now, idle: newOneIdle, spawnNanoseconds: now.nanoseconds(since: started))
            state.statistics.spawned += 1
            return (.ready(worker), evicted, taken.exited, taken.wake)
        }
        evicted?.terminate()
        for worker in exited { worker.terminate() }
        switch found {
        case .live(let worker): return (worker, false)
        case .ready(let worker):
            if wake { ready.wake() }
            return (worker, true)
        case .none: break
        }
        // The ready workers' thread is woken after this spawn (it may be created then).
        defer { if wake { ready.wake() } }
        let started = MonotonicInstant.now
        let worker: WorkerProcess
        do {
            worker = try WorkerProcess(launcher: launchers.reserveForSpawn(), timeout: configuration.spawnTimeout)
        } catch {
            // A worker can die before its first message: seen under load right after the launcher
            // was killed (cause not pinned down; likely a spare of the dead launcher dying of
            // PDEATHSIG after passing its liveness check). One more try; a dead launcher is restarted.
            worker = try WorkerProcess(launcher: launchers.reserveForSpawn(), timeout: configuration.spawnTimeout)
        }
        let stillOpen = state.withLock { state in
            guard !state.closed else { return false }
            let now = MonotonicInstant.now
            state.workers.add(worker, for: guest.id, at: now, idle: newOneIdle, spawnNanoseconds: now.nanoseconds(since: started))
            state.statistics.spawned += 1
            return true
        }
        guard stillOpen else {
            worker.terminate()
            throw .spawnFailed("the pool was shut down")
        }
        return (worker, true)
    }

    /// Marks the worker idle (or discards it when the execution left it unhealthy) and records the
    /// execution that began at `started`, if one ran.
    private func checkIn(_ worker: WorkerProcess, guest: Guest, healthy: Bool, started: MonotonicInstant?) {
        let waitsBesideWorker = worker.takeWaitsBesideWorker()
        let discard = state.withLock { state in
            let now = MonotonicInstant.now
            state.statistics.waitsBesideWorker += waitsBesideWorker
            if let started {
                state.statistics.executions += 1
                state.executionSamples.add(nanoseconds: now.nanoseconds(since: started))
            }
            guard let slot = state.workers[guest.id], slot.worker === worker else { return true }
            if healthy {
                state.workers.checkIn(slot, at: now)
                return false
            }
            _ = state.workers.remove(guest.id)
            state.statistics.discarded += 1
            return true
        }
        if discard { worker.terminate() }
    }

    /// Terminates idle workers, then the least recently used while the workers' resident memory is over
    /// budget, reads the launchers' queued reports and stops launchers left without workers. Runs
    /// periodically; callable any time.
    ///
    /// - Complexity: O(workers terminated + idle workers added or checked in since the last pass); the
    ///   lock is held for neither the reads of /proc nor the terminations.
    public func maintain() {
        let now = MonotonicInstant.now
        var victims = state.withLock { state in
            var expired: [WorkerProcess] = []
            while let guestID = state.workers.oldestIdle(idleForNanoseconds: idleTimeoutNanoseconds, at: now) {
                expired.append(state.workers.remove(guestID)!)
            }
            state.statistics.evictedIdle += expired.count
            return expired
        }
        // A worker whose /proc entry cannot be read (it died) keeps its last measurement until it is discarded.
        let measured = state.withLock { $0.workers.takeIdleUnmeasured() }.compactMap { entry in
            entry.worker.residentBytes().map { (entry.guestID, entry.worker, entry.touch, $0) }
        }
        victims += state.withLock { state in
            for (guestID, worker, touch, bytes) in measured {
                state.workers.record(residentBytes: bytes, of: worker, guestID: guestID, touch: touch)
            }
            var overBudget: [WorkerProcess] = []
            while state.workers.residentBytes > configuration.rssBudgetBytes, let guestID = state.workers.idle.oldest?.guestID {
                overBudget.append(state.workers.remove(guestID)!)
            }
            state.statistics.evictedForMemory += overBudget.count
            return overBudget
        }
        // Ready workers of a launcher spawns no longer use would keep it running.
        victims += ready.takeWorkers(notFrom: launchers.currentAndNext)
        for worker in victims { worker.terminate() }
        launchers.collectEvents()
        launchers.retireIdle()
    }

    /// Makes sure `guest` has a live worker (spawning one now rather than at its next execution) and
    /// marks it most recently used.
    public func warmUp(_ guest: Guest) throws(ExecutionError) {
        try guest.serialized { () throws(ExecutionError) in
            let (worker, isNew) = try checkOut(guest, newOneIdle: true)
            if !isNew { checkIn(worker, guest: guest, healthy: true, started: nil) }
        }
    }

    /// Resident memory of the worker serving `guest` (anonymous + shared, from /proc), if one is alive.
    public func residentBytes(of guest: Guest) -> UInt64? {
        state.withLock { $0.workers[guest.id]?.worker }?.residentBytes()
    }

    /// Terminates the worker of `guest`, if any (its next execution gets a new one).
    public func evict(_ guest: Guest) {
        let worker = state.withLock { state -> WorkerProcess? in
            guard let slot = state.workers[guest.id], !slot.busy else { return nil }
            return state.workers.remove(guest.id)
        }
        worker?.terminate()
    }
}
