import CPageState
import DequeModule
import PageStateKernel
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The host's handle on the launcher process: the worker executable started once in launcher mode,
/// which forks workers on request. The host asks ahead of need and keeps `spareWorkers` forked
/// workers in hand, so a spawn takes one without a round trip to the launcher (two wake-ups, and on a
/// small machine the launcher's fork of the replacement competing with the spawn); the replenishing
/// thread has read each one's `ready` and sent it a mailbox made ahead, so a spawn neither waits nor
/// sends. Spawns are serialized; a launcher that died is restarted on the next spawn. Nothing here
/// blocks without a timeout. A pool runs several launchers, each forking a bounded number of the
/// live workers (`Launchers`).
final class Launcher: Sendable {
    private let configuration: SandboxConfiguration
    /// Workers from this launcher that are alive or being spawned (`Launchers` reserves; the worker
    /// releases when it is closed).
    private let reservedWorkers = Atomic<Int>(0)
    /// `.pidfd` or `.launcher`: where exit statuses come from.
    let exitReporting: WorkerExitReporting
    private let state: Mutex<State>
    /// The thread behind `spawn()`'s refills and `prepare()`: started at the first spawn or `prepare()`,
    /// stopped by `shutDown()`.
    private let replenishing: OnDemandReplenishingThread
    /// How long the replenishing thread looks for wake-ups after each run (`ReplenishingThread`).
    let replenishingStayAwake: Duration
    /// Times a spawn woke the replenishing thread (outside `state`: counting it there took the
    /// launcher's lock once more per refill, which in bursts often waited for the thread).
    private let refillCount = Atomic<Int>(0)
    /// Dead launcher processes replaced (outside `state`, which the replenishing thread holds while
    /// it starts a launcher made ahead, ~10-30 ms with the copy, so that statistics do not wait).
    private let restartCount = Atomic<Int>(0)
    /// Whether the launcher process was started from a private copy of the executable (outside
    /// `state`, which a spawn can hold for a while, so that statistics do not wait).
    private let startedFromCopy = Atomic<Bool>(false)
    /// Why this launcher runs the original executable although it was to run a copy, if it does.
    private let copyFailureReason = Mutex<String?>(nil)

    private struct State: @unchecked Sendable {  // descriptors are owned by the state
        var executable: Executable
        var process: ProcessID?
        var control: FileDescriptor?
        var nextRequest: UInt64 = 0
        /// Requests the launcher has not answered yet.
        var pending: Set<UInt64> = []
        /// Forked workers not handed out yet, oldest first (a spawn takes the first: O(1), where an
        /// array's `removeFirst` cost ~1.5 µs of a paced spawn's ~12: performance.md, session 37).
        var spares: Deque<Spawned> = []
        /// Mailbox files made ahead for the next spawns, with the host's mappings.
        var mailboxes: [SharedMailbox.HostEnd] = []
        /// Whether the replenishing thread was woken and has not yet counted what to ask for: spawns
        /// meanwhile need not wake it again.
        var refillWoken = false
        /// Whether the replenishing thread is to start the launcher, if it is not running (`prepare()`).
        var startAhead = false
        /// Why the launcher's last fork failed, until a spawn that finds no spare reports it.
        var forkFailure: Errno?
        /// Exits reported by the launcher that nobody has asked about yet (`.launcher` reporting only).
        var exits: [ProcessID: ProcessTermination] = [:]
        /// Workers whose exit report nobody will ask about: dropped when it arrives (or when the
        /// launcher reuses the pid, which means the report was lost).
        var ignoredExits: Set<ProcessID> = []
    }

    /// What the launcher process runs.
    enum Executable {
        /// `configuration.workerExecutable` itself.
        case original
        /// A private copy of it, to be made in this directory when the launcher first starts.
        case copyToMake(FilePath)
        /// A private copy (`FileDescriptor.executableCopy`, possibly run before by a launcher since
        /// stopped), owned by the launcher.
        case copy(FileDescriptor)
        /// The launcher was shut down (its copy closed or handed back): it starts no process any more.
        case shutDown
    }

    /// A launcher that runs `executable` (a copy still to make is made when the launcher first starts —
    /// at its first spawn, or ahead through `prepare()`; a copy is closed by `shutDown()` or handed
    /// back by `shutDownHandingBackCopy()`).
    init(configuration: SandboxConfiguration, executable: Executable = .original) {
        self.configuration = configuration
        exitReporting = configuration.exitReporting.resolved
        state = Mutex(State(executable: executable))
        // With ready workers a paced spawn takes one of those, and it is the pool's thread that
        // takes spares and wakes this one: looks every delay would mostly add timer interrupts, and
        // the spawns that find no ready worker (bursts, a growing pool) pay a `write` to wake it.
        // Without, every spawn may wake it, and a wake-up while it looks costs no `write`.
        replenishingStayAwake = configuration.keepsReadyWorkers ? .zero : Self.replenishingStaysAwake
        replenishing = OnDemandReplenishingThread(name: "pagestate-spares", delay: Self.replenishDelay,
                                                  stayAwake: replenishingStayAwake)
    }

    /// Workers from this launcher that are alive or being spawned.
    var workerCount: Int { reservedWorkers.load(ordering: .relaxed) }
    /// Counts a worker about to be spawned from this launcher; `releaseWorker()` when it is closed.
    func reserveWorker() { reservedWorkers.add(1, ordering: .relaxed) }
    func releaseWorker() { reservedWorkers.subtract(1, ordering: .relaxed) }
    /// Whether the launcher process was started from a private copy of the worker executable.
    var runsCopy: Bool { startedFromCopy.load(ordering: .relaxed) }
    /// Why the launcher runs the original executable instead of a copy, if it was to run one.
    var copyFailure: String? { copyFailureReason.withLock { $0 } }

    /// The launcher's pid, if it is running.
    var processID: ProcessID? { state.withLock { $0.process } }
    /// How many times a dead launcher was replaced.
    var restarts: Int { restartCount.load(ordering: .relaxed) }
    /// Exit reports held for later questions or to be dropped (bounded by the workers alive).
    var heldExitReports: Int { state.withLock { $0.exits.count + $0.ignoredExits.count } }
    /// Spares whose `ready` was read and which were sent their mailbox.
    var greetedSpares: Int { state.withLock { $0.spares.count { $0.channel.mailbox != nil } } }
    /// What the death notices of the spares in hand say, oldest first (for tests).
    var spareWorkerLives: [SharedMailbox.WorkerLife] { state.withLock { $0.spares.map { $0.channel.mailbox?.workerLife ?? .unknown } } }
    /// Spares in hand plus forks asked for and not answered yet.
    var sparesInHandOrAsked: Int { state.withLock { $0.spares.count + $0.pending.count } }
    /// How many times the replenishing thread was woken to ask for spares (by spawns, or to start the
    /// launcher made ahead).
    var refills: Int { refillCount.load(ordering: .relaxed) }

    /// A forked worker — a spare, or else the answer to a new request — starting the launcher if
    /// needed and restarting it once if it has died. The worker may not have said it is ready yet.
    /// Replenishes (`claimRefill`) as it goes: decided under the same lock, the wake-up after it.
    func spawn() throws(ExecutionError) -> Spawned {
        try handOut { (state) throws(ExecutionError) in
            do {
                return try takeSpare(&state)
            } catch {
                // The launcher may have died since the last spawn: start a new one and try once more.
                stop(&state)
                restartCount.add(1, ordering: .relaxed)
                return try takeSpare(&state)
            }
        }.spare!  // `takeSpare` returns a spare or throws
    }

    /// The oldest live spare in hand, if at least half of `spareWorkers` are in hand (fewer are left
    /// to spawns, which may be waiting for them: the pool growing): never starts the launcher, reads
    /// its answers, asks for a fork or waits (for `ReadyWorkers`, which must not delay spawns that
    /// wait for forks); replenishes as `spawn()` does. Without one, `coming` says whether spares are
    /// on their way (forks asked for and not answered, or a refill about to ask).
    ///
    /// - Complexity: O(1) plus the exited spares dropped (each may cost a `poll`).
    func spareInHand() -> (spare: Spawned?, coming: Bool) {
        let half = (configuration.spareWorkers + 1) / 2
        return (try? handOut { $0.spares.count >= half ? takeLiveSpare(&$0) : nil }) ?? (nil, false)  // does not throw
    }

    /// What `take` finds under the lock, greeted if `take` read it itself (none was in hand), and,
    /// decided under the same lock, a refill (`claimRefill`), woken after it; with nothing found,
    /// whether spares are on their way then (forks asked for, or a refill claimed and not yet run).
    private func handOut(_ take: (inout State) throws(ExecutionError) -> Spawned?) throws(ExecutionError)
        -> (spare: Spawned?, coming: Bool)
    {
        let (spawned, refill, coming) = try state.withLock { (state) throws(ExecutionError) -> (Spawned?, Bool, Bool) in
            var spare = try take(&state)
            spare?.greetIfReady(takingMailboxFrom: &state.mailboxes)
            let refill = claimRefill(&state)
            return (spare, refill, spare == nil && (!state.pending.isEmpty || state.refillWoken))
        }
        if refill { wakeReplenishingThread() }
        return (spawned, coming)
    }

    /// Whether a spawn is to wake the replenishing thread (then marked woken, so that later spawns
    /// do not wake it again before it runs): once fewer than half of `spareWorkers` spares are in
    /// hand or on their way, the thread asks the launcher, a moment later, for as many forks as make
    /// `spareWorkers` again. The spawn does not wait; a failure shows at the next spawn. Asking in
    /// batches leaves most spawns without a wake-up (performance.md, session 24), and a wake-up while
    /// the thread is awake is an atomic store, not a `write` (session 26). The delay keeps the fork
    /// off the spawn's path: sent at once (from the spawning thread or a background one), the request
    /// often got the launcher's fork scheduled on the spawning thread's processor, and paced spawns
    /// measured p99 1.0-1.8 ms instead of ~0.45 ms on a 2-core machine. After `shutDown()` none is
    /// claimed (no launcher runs) and a wake-up would run nothing. Decided under the spawn's lock, which
    /// saves taking it again.
    private func claimRefill(_ state: inout State) -> Bool {
        guard !state.refillWoken, state.control != nil,  // a launcher not running asks for nothing
              state.spares.count + state.pending.count < (configuration.spareWorkers + 1) / 2 else {
            return false
        }
        state.refillWoken = true
        return true
    }

    /// Has the replenishing thread start the launcher (making its copy of the executable) and fork
    /// its spares, so that the first spawn from it does neither; does not wait. A failure to start
    /// shows at that spawn, which tries again. Creates the replenishing thread if it is not running.
    func prepare() {
        let wake = state.withLock { state in
            state.startAhead = true
            defer { state.refillWoken = true }
            return !state.refillWoken  // else a run is coming, which starts it
        }
        if wake { wakeReplenishingThread() }
    }

    /// Wakes the replenishing thread (starting it first if needed) after `refillWoken` was set.
    private func wakeReplenishingThread() {
        // A thread that cannot be created now is tried again at the next spawn.
        if replenishing.wake(work: { [self] in requestSpares(wokenAgain: $0) }) {
            refillCount.add(1, ordering: .relaxed)
        } else {
            state.withLock { $0.refillWoken = false }
        }
    }

    static let replenishDelay = Duration.milliseconds(2)
    /// How long after its last run a replenishing thread woken by spawns (a launcher's without ready
    /// workers; the ready workers' own) looks for wake-ups every `replenishDelay`, so that waking it
    /// is an atomic store, not a `write`: ~100 looks, each a few µs of processor time and, unless
    /// its timer slack lets it share one, a timer interrupt.
    static let replenishingStaysAwake = Duration.milliseconds(200)

    /// The replenishing thread, while it runs (for tests).
    var replenishingThread: ReplenishingThread? { replenishing.running }

    /// Makes mailboxes for the spares to come, asks for the forks, then waits for the answers and
    /// reads them, so that the spares' `ready` is read and their mailboxes sent here, not by a spawn.
    /// Stops waiting once `wokenAgain` is readable (a spawn since: run again) or the answers were read.
    private func requestSpares(wokenAgain: FileDescriptor) {
        let wantedMailboxes = state.withLock { state in
            state.refillWoken = false  // a spawn from now on wakes the thread for one more run
            if state.startAhead {
                state.startAhead = false
                _ = try? start(&state)  // a failure shows at the first spawn, which tries again
            }
            return state.control == nil ? 0 : configuration.spareWorkers - state.mailboxes.count
        }
        // Made outside the lock (~30 µs each); none is needed for a spawn to succeed.
        var made = (0..<max(0, wantedMailboxes)).compactMap { _ in try? SharedMailbox.createForHost() }
        // A copy of the control socket to send and wait on without the lock (a restart may close the
        // original): a send wakes the launcher, whose fork may take this thread's processor at once.
        let waited = state.withLock { state -> (answers: FileDescriptor, launcher: ProcessID?, requests: [UInt64])? in
            guard let control = state.control else { return nil }
            state.mailboxes += made
            made = []
            var requests: [UInt64] = []
            while state.spares.count + state.pending.count < configuration.spareWorkers {
                state.nextRequest += 1
                state.pending.insert(state.nextRequest)
                requests.append(state.nextRequest)
            }
            guard !state.pending.isEmpty, let answers = try? control.duplicateCloseOnExec() else {
                for id in requests { state.pending.remove(id) }
                return nil
            }
            return (answers, state.process, requests)
        }
        for unused in made { try? unused.file.close() }
        guard let (answers, launcher, requests) = waited else { return }
        defer { try? answers.close() }
        for (sent, id) in requests.enumerated() where (try? answers.send(Self.request(id))) == nil {
            // The launcher is gone (the next spawn restarts it): these will not be answered.
            state.withLock { state in
                guard state.process == launcher else { return }
                for unsent in requests[sent...] { state.pending.remove(unsent) }
            }
            return
        }
        let deadline = ContinuousClock.now + configuration.spawnTimeout
        while let ready = try? waitForAnyReadable([answers, wokenAgain], timeoutMilliseconds: pollTimeout(until: deadline)),
              ready.contains(answers), !ready.contains(wokenAgain) {
            // The answers are read under the lock; the new spares are greeted outside it (the mailbox
            // wakes the worker, which could take this thread's processor while it held the lock).
            let read = state.withLock { state -> (waitForMore: Bool, new: [Spawned], mailboxes: [SharedMailbox.HostEnd]) in
                // Another launcher by now (a spawn restarted it, and reads its answers), or this one died.
                guard state.process == launcher, let control = state.control,
                      (try? drain(&state, control: control)) != nil else { return (false, [], []) }
                let new: [Spawned] = state.spares.filter { $0.greeting == nil }
                state.spares.removeAll { $0.greeting == nil }
                let mailboxes = Array(state.mailboxes.suffix(new.count))
                state.mailboxes.removeLast(mailboxes.count)
                return (!state.pending.isEmpty, new, mailboxes)
            }
            var mailboxes = read.mailboxes
            let greeted = read.new.map { spare in
                var spare = spare
                spare.greetIfReady(takingMailboxFrom: &mailboxes)
                return spare
            }
            let kept = state.withLock { state in
                guard state.process == launcher, state.control != nil else { return false }
                state.spares += greeted
                state.mailboxes += mailboxes
                return true
            }
            if !kept {  // the launcher was stopped meanwhile: its workers died with it
                for spare in greeted { spare.close() }
                for unused in mailboxes { try? unused.file.close() }
            }
            guard read.waitForMore else { return }
        }
    }

    private func takeSpare(_ state: inout State) throws(ExecutionError) -> Spawned {
        // While a spare is in hand the launcher's answers are not read here: the replenishing thread does.
        if let spare = takeLiveSpare(&state) { return spare }
        let control = try start(&state)
        try drain(&state, control: control)  // answers and exit reports that arrived meanwhile
        let deadline = ContinuousClock.now + configuration.spawnTimeout
        var asked: UInt64?  // this spawn's own request, once it made one
        while true {
            // The answer to this spawn's own request is taken as it is: a worker that failed before
            // its `ready` is the spawn's to report (asking again would fail alike, fork after fork).
            if let own = state.spares.firstIndex(where: { $0.request == asked }) { return state.spares.remove(at: own) }
            if let spare = takeLiveSpare(&state) { return spare }
            if let failure = state.forkFailure {
                state.forkFailure = nil
                throw .spawnFailed("fork in the launcher: \(failure)")
            }
            if state.pending.isEmpty {
                try request(&state, control: control)
                asked = state.nextRequest
            }
            guard try nextEvent(&state, control: control, until: deadline) else {
                throw .spawnFailed("launcher did not answer within \(configuration.spawnTimeout)")
            }
        }
    }

    /// The oldest spare that is alive, if any; dead ones (killed from outside while waiting, out of
    /// memory) are closed and dropped (`workerHasExited`: no system call once a spare's death notice
    /// is linked).
    private func takeLiveSpare(_ state: inout State) -> Spawned? {
        while !state.spares.isEmpty {
            let spare = state.spares.removeFirst()
            guard workerHasExited(mailbox: spare.channel.mailbox, pidfd: spare.pidfd) else { return spare }
            spare.close()
            ignoreExit(&state, of: spare.pid)
        }
        return nil
    }

    /// Reads the launcher's queued events (spares, exit reports) without waiting, so that its socket
    /// does not fill up while no spawn happens. A dead launcher shows at the next spawn.
    func collectEvents() {
        state.withLock { state in
            guard let control = state.control else { return }
            try? drain(&state, control: control)
        }
    }

    private func drain(_ state: inout State, control: FileDescriptor) throws(ExecutionError) {
        while try nextEvent(&state, control: control, until: .now) {}
    }

    private func request(_ state: inout State, control: FileDescriptor) throws(ExecutionError) {
        state.nextRequest += 1
        do { try control.send(Self.request(state.nextRequest)) } catch { throw .spawnFailed("launcher: \(error)") }
        state.pending.insert(state.nextRequest)
    }

    /// The bytes of a fork request.
    private static func request(_ id: UInt64) -> [UInt8] {
        var request = ps_launch_request(magic: UInt32(PS_LAUNCH_MAGIC), kind: UInt32(PS_LAUNCH_SPAWN), id: id)
        return withUnsafeBytes(of: &request) { Array($0) }
    }

    /// Reads and records one launcher event; false when none came by `deadline`.
    private func nextEvent(_ state: inout State, control: FileDescriptor,
                           until deadline: ContinuousClock.Instant) throws(ExecutionError) -> Bool {
        let remaining = max(0, Self.milliseconds(deadline - ContinuousClock.now))
        let event: ps_launch_event, descriptors: [FileDescriptor]
        do {
            guard try control.waitReadable(timeoutMilliseconds: Int32(remaining)) else { return false }
            let message = try control.receive(maximumLength: MemoryLayout<ps_launch_event>.size, maximumDescriptors: 2)
            guard message.bytes.count == MemoryLayout<ps_launch_event>.size, !message.truncated else {
                for descriptor in message.descriptors { try? descriptor.close() }
                throw ExecutionError.spawnFailed(message.bytes.isEmpty ? "the launcher exited" : "malformed launcher event")
            }
            var decoded = ps_launch_event()
            withUnsafeMutableBytes(of: &decoded) { $0.copyBytes(from: message.bytes) }
            (event, descriptors) = (decoded, message.descriptors)
        } catch let error as ExecutionError {
            throw error
        } catch {
            throw .spawnFailed("launcher: \(error)")
        }
        let pid = ProcessID(rawValue: event.pid)
        switch Int(event.kind) {
        case Int(PS_LAUNCH_SPAWNED) where descriptors.count == 2 && state.pending.remove(event.id) != nil:
            state.ignoredExits.remove(pid)  // the pid was reused: its earlier exit report was lost
            state.spares.append(Spawned(request: event.id, pid: pid, pidfd: descriptors[0], socket: descriptors[1]))
        case Int(PS_LAUNCH_FAILED) where state.pending.remove(event.id) != nil:
            state.forkFailure = Errno(rawValue: event.value)
        case Int(PS_LAUNCH_EXITED):
            if state.ignoredExits.remove(pid) == nil { state.exits[pid] = ProcessTermination(waitStatus: event.value) }
        default:
            for descriptor in descriptors { try? descriptor.close() }
        }
        return true
    }

    /// How worker `pid` (behind `pidfd`) ended, from its pidfd or as the launcher reported it; waits up
    /// to `timeout` for it to exit and the status to arrive.
    func termination(of pid: ProcessID, pidfd: FileDescriptor, timeout: Duration) -> ProcessTermination? {
        let deadline = ContinuousClock.now + timeout
        if exitReporting == .pidfd { return pidfd.waitForExitStatus(until: deadline) }
        return state.withLock { state in
            while true {
                if let termination = state.exits.removeValue(forKey: pid) { return termination }
                guard let control = state.control, (try? nextEvent(&state, control: control, until: deadline)) == true else {
                    return nil
                }
            }
        }
    }

    /// Forgets the exit of a worker nobody will ask about (one the pool discarded without waiting),
    /// whether or not the launcher reported it yet. Not for a worker whose `termination` was taken.
    func forgetExit(of pid: ProcessID) {
        state.withLock { ignoreExit(&$0, of: pid) }
    }

    private func ignoreExit(_ state: inout State, of pid: ProcessID) {
        guard exitReporting == .launcher else { return }  // no report will come
        if state.exits.removeValue(forKey: pid) == nil { state.ignoredExits.insert(pid) }
    }

    /// Starts the launcher process if it is not running: from its copy of the executable (made first if
    /// it is still to make) or, when the copy cannot be made or run (a `noexec` directory, say), from
    /// the original, noting why.
    private func start(_ state: inout State) throws(ExecutionError) -> FileDescriptor {
        if let control = state.control { return control }
        if exitReporting == .pidfd && !KernelFeatures.pidfdExitStatusAvailable {
            throw .spawnFailed("exit reporting by pidfd needs Linux 6.15 (PIDFD_INFO_EXIT); this kernel keeps no exit status")
        }
        let original = configuration.workerExecutable
        if case .copyToMake(let directory) = state.executable {
            do {
                state.executable = .copy(try FileDescriptor.executableCopy(of: original, in: directory))
            } catch {
                runOriginal(&state, because: "copying \(original) into \(directory): \(error)")
            }
        }
        if case .copy(let copy) = state.executable {
            do {
                // The copy has no name: `execve` finds it at descriptor 4 of the new process.
                let control = try FileDescriptor.retryingWhileTextBusy {
                    try launch(&state, path: FilePath("/proc/self/fd/4"), extraDescriptors: [copy])
                }
                startedFromCopy.store(true, ordering: .relaxed)
                return control
            } catch {
                runOriginal(&state, because: "starting a copy of \(original): \(error)")
            }
        }
        guard case .original = state.executable else { throw .spawnFailed("the launcher was shut down") }
        do {
            return try launch(&state, path: original, extraDescriptors: [])
        } catch {
            throw .spawnFailed("starting the launcher \(original): \(error)")
        }
    }

    private func runOriginal(_ state: inout State, because reason: String) {
        if case .copy(let copy) = state.executable { try? copy.close() }
        state.executable = .original
        startedFromCopy.store(false, ordering: .relaxed)
        copyFailureReason.withLock { $0 = reason }
    }

    /// Spawns the launcher process from `path`, with `extraDescriptors` from descriptor 4 on.
    private func launch(_ state: inout State, path: FilePath, extraDescriptors: [FileDescriptor]) throws -> FileDescriptor {
        let (host, launcher) = try FileDescriptor.socketPair()
        defer { try? launcher.close() }
        let null = try FileDescriptor.open("/dev/null", .readWrite, options: .closeOnExec)
        defer { try? null.close() }
        do {
            let pid = try spawnProcess(path, arguments: [configuration.workerExecutable.string, WorkerMain.launcherFlag,
                                                         "--address-space", "\(configuration.workerAddressSpaceBytes)",
                                                         "--open-files", "\(configuration.workerOpenFiles)",
                                                         WorkerMain.exitsFlag, exitReporting == .pidfd ? "pidfd" : "launcher"],
                                       environment: ["SWIFT_BACKTRACE=enable=no"],  // a confined worker cannot exec the backtracer
                                       descriptors: [null, null, .standardError, launcher] + extraDescriptors)
            state.process = pid
            state.control = host
            return host
        } catch {
            try? host.close()
            throw error
        }
    }

    /// Stops the launcher (its workers die with it: PDEATHSIG) and reaps it.
    private func stop(_ state: inout State) {
        try? state.control?.close()
        state.control = nil
        if let pid = state.process {
            kill(pid.rawValue, SIGKILL)
            _ = try? waitForChild(pid, block: true)
        }
        state.process = nil
        for spare in state.spares { spare.close() }  // they died with the launcher
        state.spares = []
        for prepared in state.mailboxes { try? prepared.file.close() }
        state.mailboxes = []
        state.pending = []
        state.forkFailure = nil
        state.exits = [:]
        state.ignoredExits = []
    }

    /// Stops the launcher and with it every worker, then the replenishing thread, and closes its copy
    /// of the executable; later spawns fail. Call it before dropping the launcher: until then the
    /// replenishing thread keeps it.
    func shutDown() {
        try? shutDownHandingBackCopy()?.close()
    }

    /// Stops the launcher as `shutDown()` does, but hands back its private copy of the executable, if
    /// it has one, instead of closing it: once its processes are gone nothing maps the copy, and a new
    /// launcher can run it (`Executable.copy`) without making another.
    func shutDownHandingBackCopy() -> FileDescriptor? {
        let thread = replenishing.close()
        // The launcher first: its death ends the thread's wait for its answers.
        let copy = state.withLock { state -> FileDescriptor? in
            stop(&state)
            defer { state.executable = .shutDown }
            if case .copy(let copy) = state.executable { return copy }
            return nil
        }
        thread?.stop()
        return copy
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
