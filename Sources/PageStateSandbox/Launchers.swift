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
/// (`FileDescriptor.executableCopy`), whose pages and processes are its own. A launcher other than
/// the current one is stopped once its last worker is gone (`retireIdle()`).
final class Launchers: Sendable {
    private let configuration: SandboxConfiguration
    private let state: Mutex<State>

    private struct State: Sendable {
        /// Every launcher with workers, and the current one (the last used for a spawn).
        var launchers: [Launcher]
        var current: Launcher
        /// Copies of the executable that could not be made (their launchers run the original).
        var copyFailures = 0
        var lastCopyFailure: String?
        /// Restarts and refills of the launchers stopped so far (the statistics keep counting them).
        var retiredRestarts = 0
        var retiredRefills = 0
    }

    init(configuration: SandboxConfiguration) {
        self.configuration = configuration
        let first = Launcher(configuration: configuration)  // small pools never need a copy
        state = Mutex(State(launchers: [first], current: first))
    }

    /// The launcher the next worker comes from, with that worker counted in it (`Launcher.releaseWorker()`
    /// once it is closed). Making a new launcher's copy of the executable (~16 MB) takes that spawn
    /// ~10-30 ms more, once per `workersPerLauncher` more live workers.
    ///
    /// - Complexity: O(launchers).
    func reserveForSpawn() -> Launcher {
        state.withLock { state in
            if state.current.workerCount >= configuration.workersPerLauncher {
                let others = state.launchers.filter { $0 !== state.current && $0.workerCount < configuration.workersPerLauncher / 2 }
                if let least = others.min(by: { $0.workerCount < $1.workerCount }) {
                    state.current = least
                } else {
                    let next = makeLauncher(&state)
                    state.launchers.append(next)
                    state.current = next
                }
            }
            state.current.reserveWorker()
            return state.current
        }
    }

    private func makeLauncher(_ state: inout State) -> Launcher {
        let directory = configuration.executableCopyDirectory ?? configuration.workerExecutable.removingLastComponent()
        do {
            let copy = try FileDescriptor.executableCopy(of: configuration.workerExecutable, in: directory)
            return Launcher(configuration: configuration, executable: .copy(copy))
        } catch {
            // Spawns still work, forking from another process that runs the original executable.
            state.copyFailures += 1
            state.lastCopyFailure = "copying \(configuration.workerExecutable) into \(directory): \(error)"
            return Launcher(configuration: configuration)
        }
    }

    /// Stops every launcher but the current one that has no worker left (their spares die with them).
    ///
    /// - Complexity: O(launchers), plus stopping each idle one.
    func retireIdle() {
        let idle = state.withLock { state in
            let idle = state.launchers.filter { $0 !== state.current && $0.workerCount == 0 }
            state.launchers.removeAll { $0 !== state.current && $0.workerCount == 0 }
            state.retiredRestarts += idle.reduce(0) { $0 + $1.restarts }
            state.retiredRefills += idle.reduce(0) { $0 + $1.refills }
            return idle
        }
        for launcher in idle { launcher.shutDown() }
    }

    /// Reads every launcher's queued events (`Launcher.collectEvents()`).
    func collectEvents() {
        for launcher in all { launcher.collectEvents() }
    }

    /// Stops every launcher and with them every worker.
    func shutDown() {
        for launcher in all { launcher.shutDown() }
    }

    private var all: [Launcher] { state.withLock { $0.launchers } }

    /// The current launcher's pid, if it is running.
    var processID: ProcessID? { state.withLock { $0.current }.processID }
    /// Launchers with workers (or the current one), and how many of them run a copy of the executable.
    var counts: (launchers: Int, copies: Int) {
        let launchers = all
        return (launchers.count, launchers.count { $0.runsCopy })
    }
    /// Copies of the executable that could not be made, and why the last one failed.
    var copyFailures: (count: Int, last: String?) { state.withLock { ($0.copyFailures, $0.lastCopyFailure) } }
    /// Dead launchers replaced, and refills asked for, by every launcher the pool had.
    var restarts: Int { state.withLock { state in state.launchers.reduce(state.retiredRestarts) { $0 + $1.restarts } } }
    var refills: Int { state.withLock { state in state.launchers.reduce(state.retiredRefills) { $0 + $1.refills } } }
    var sparesInHandOrAsked: Int { all.reduce(0) { $0 + $1.sparesInHandOrAsked } }
}
