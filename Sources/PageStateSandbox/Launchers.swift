import PageStateKernel
import Synchronization
import SystemPackage

/// The launchers of a pool, each forking at most about `workersPerLauncher` of the live workers.
///
/// Every process a launcher forks maps the launcher's executable file and shares its anonymous pages,
/// and a `fork` waits for the kernel's reverse-map walks over those pages (reclaim, DAMON), whose
/// length grows with the processes that map them: with 1,000 live forks of one process, its forks
/// took up to 13-36 ms instead of 0.2-0.3 (performance.md, session 33). So once the current
/// launcher has `workersPerLauncher` workers, spawns move to another: one with fewer than half that
/// many, else a new launcher running a private copy of the worker executable
/// (`FileDescriptor.executableCopy`, made when it starts), whose pages and processes are its own
/// (for a statically linked worker: a dynamic one still shares its libraries). That new launcher is
/// made ahead: once the current one has `workersPerLauncher - max(1, workersPerLauncher / 4)`
/// workers and none other has room, the next is started, its copy made and its spares forked from
/// its own replenishing thread (`Launcher.prepare()`), so that no spawn pays for the copy (~10-30 ms).
/// A launcher other than the current and the next one is stopped once its last worker is gone
/// (`retireIdle()`); the next one too once the current one has fewer than half its workers. A stopped
/// launcher's copy is kept for `idleTimeout` and run by a later new launcher instead of a new copy: a
/// pool whose size swings across launcher boundaries does not write ~16 MB of page cache per launcher
/// it makes. (Nothing maps a kept copy's pages: once written back they are page cache the kernel may
/// reclaim; on tmpfs they are shared memory.)
final class Launchers: Sendable {
    private let configuration: SandboxConfiguration
    private let state: Mutex<State>

    private struct State: Sendable {
        /// Every launcher not stopped yet (with workers, or idle until the next `retireIdle()`), the
        /// current one (the last used for a spawn) among them.
        var launchers: [Launcher]
        var current: Launcher
        /// A launcher started ahead for spawns once `current` is full (among `launchers`; no worker yet).
        var next: Launcher?
        /// Restarts, refills and copy failures of the launchers stopped so far (the statistics keep
        /// counting them).
        var retiredRestarts = 0
        var retiredRefills = 0
        var retiredCopyFailures = 0
        var lastRetiredCopyFailure: String?
        /// Copies of the executable from stopped launchers, oldest first, with when each was stopped.
        var retiredCopies: [(copy: FileDescriptor, since: ContinuousClock.Instant)] = []
        /// New launchers that were given a retired copy (to run unless it fails to start).
        var reusedCopies = 0
        /// Set by `shutDown()`: no launcher is made after it.
        var closed = false
    }

    init(configuration: SandboxConfiguration) {
        self.configuration = configuration
        let first = Launcher(configuration: configuration)  // small pools never need a copy
        state = Mutex(State(launchers: [first], current: first))
    }

    /// The launcher the next worker comes from, with that worker counted in it (`Launcher.releaseWorker()`
    /// once it is closed). Once the current launcher is full, spawns move to another with fewer than
    /// half as many workers, else to the one made ahead, else to a new one (which the spawn then starts,
    /// making its copy of the executable unless it was given a kept one: ~10-30 ms more for that
    /// spawn). Makes the next launcher ahead when the current one is nearly full (creating its
    /// replenishing thread on this thread, once).
    ///
    /// - Complexity: O(launchers).
    func reserveForSpawn() -> Launcher {
        let limit = max(1, configuration.workersPerLauncher)
        let (reserved, toPrepare) = state.withLock { state -> (Launcher, Launcher?) in
            if state.current.workerCount >= limit && !state.closed {
                if let least = launcherWithRoom(state, limit: limit) {
                    state.current = least
                } else if let next = state.next {
                    state.current = next
                    state.next = nil
                } else {
                    state.current = newLauncher(&state)
                }
            }
            state.current.reserveWorker()
            guard state.next == nil, !state.closed, state.current.workerCount >= limit - max(1, limit / 4),
                  launcherWithRoom(state, limit: limit) == nil else { return (state.current, nil) }
            let next = newLauncher(&state)
            state.next = next
            return (state.current, next)
        }
        toPrepare?.prepare()
        return reserved
    }

    /// The launcher with the fewest workers among those other than the current and the next one with
    /// fewer than half of `limit`.
    private func launcherWithRoom(_ state: State, limit: Int) -> Launcher? {
        state.launchers.lazy.filter { $0 !== state.current && $0 !== state.next && $0.workerCount < limit / 2 }
            .min { $0.workerCount < $1.workerCount }
    }

    /// A new launcher, to run a copy of the worker executable — the newest retired one, else one it
    /// makes when it starts — added to `state.launchers`.
    private func newLauncher(_ state: inout State) -> Launcher {
        let executable: Launcher.Executable
        if let retired = state.retiredCopies.popLast() {
            executable = .copy(retired.copy)
            state.reusedCopies += 1
        } else {
            let parent = configuration.workerExecutable.removingLastComponent()  // empty for a bare name
            executable = .copyToMake(configuration.executableCopyDirectory ?? (parent.isEmpty ? "." : parent))
        }
        let launcher = Launcher(configuration: configuration, executable: executable)
        state.launchers.append(launcher)
        return launcher
    }

    /// Stops every launcher but the current one that has no worker left (their spares die with them),
    /// keeping the one made ahead while the current one has at least half its workers, and keeps their
    /// copies of the executable for new launchers; closes the copies kept longer than `idleTimeout`.
    ///
    /// - Complexity: O(launchers + kept copies), plus stopping each idle one.
    func retireIdle() {
        let limit = max(1, configuration.workersPerLauncher)
        let idle = state.withLock { state in
            if state.current.workerCount < limit / 2 { state.next = nil }
            // Counted once: a worker closing meanwhile must not leave a launcher out of both lists.
            let idle = state.launchers.filter { $0 !== state.current && $0 !== state.next && $0.workerCount == 0 }
            state.launchers.removeAll { launcher in idle.contains { $0 === launcher } }
            state.retiredRestarts += idle.reduce(0) { $0 + $1.restarts }
            state.retiredRefills += idle.reduce(0) { $0 + $1.refills }
            for failure in idle.compactMap(\.copyFailure) {
                state.retiredCopyFailures += 1
                state.lastRetiredCopyFailure = failure
            }
            return idle
        }
        let copies = idle.compactMap { $0.shutDownHandingBackCopy() }
        let unkept = state.withLock { state in
            let now = ContinuousClock.now  // read under the lock: the list stays in stopping order
            state.retiredCopies += copies.map { ($0, now) }
            let expired = state.closed ? state.retiredCopies.count
                : state.retiredCopies.prefix { now - $0.since >= configuration.idleTimeout }.count
            defer { state.retiredCopies.removeFirst(expired) }
            return state.retiredCopies.prefix(expired).map(\.copy)
        }
        for copy in unkept { try? copy.close() }
    }

    /// Reads every launcher's queued events (`Launcher.collectEvents()`).
    func collectEvents() {
        for launcher in all { launcher.collectEvents() }
    }

    /// Stops every launcher and with them every worker; no launcher is made afterwards.
    func shutDown() {
        let (launchers, copies) = state.withLock { state in
            state.closed = true
            defer { state.retiredCopies = [] }
            return (state.launchers, state.retiredCopies.map(\.copy))
        }
        for launcher in launchers { launcher.shutDown() }
        for copy in copies { try? copy.close() }
    }

    private var all: [Launcher] { state.withLock { $0.launchers } }

    /// The current launcher and the one made ahead, if any: those spawns use now.
    ///
    /// - Complexity: O(1).
    var currentAndNext: [Launcher] { state.withLock { [$0.current] + ($0.next.map { [$0] } ?? []) } }

    /// The current launcher's pid, if it is running.
    var processID: ProcessID? { state.withLock { $0.current }.processID }
    /// The launcher made ahead for spawns once the current one is full, if there is one (for tests).
    var next: Launcher? { state.withLock { $0.next } }
    /// Launchers not stopped yet (the current one, even before its process starts), and how many of
    /// them run a copy of the executable.
    var counts: (launchers: Int, copies: Int) {
        let launchers = all
        return (launchers.count, launchers.count { $0.runsCopy })
    }
    /// Launchers that run the original executable because their copy could not be made or run, and
    /// why the last of them could not.
    var copyFailures: (count: Int, last: String?) {
        state.withLock { state in
            let failures = state.launchers.compactMap(\.copyFailure)
            return (state.retiredCopyFailures + failures.count, failures.last ?? state.lastRetiredCopyFailure)
        }
    }
    /// Dead launchers replaced, and refills asked for, by every launcher the pool had.
    var restarts: Int { state.withLock { state in state.launchers.reduce(state.retiredRestarts) { $0 + $1.restarts } } }
    var refills: Int { state.withLock { state in state.launchers.reduce(state.retiredRefills) { $0 + $1.refills } } }
    var sparesInHandOrAsked: Int { all.reduce(0) { $0 + $1.sparesInHandOrAsked } }
    /// Copies of the executable kept from stopped launchers, and new launchers given one so far.
    var retiredCopies: (kept: Int, reused: Int) { state.withLock { ($0.retiredCopies.count, $0.reusedCopies) } }
}
