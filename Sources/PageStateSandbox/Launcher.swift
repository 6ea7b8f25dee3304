import CPageState
import PageStateKernel
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The host's handle on the launcher process: the worker executable started once in launcher mode,
/// which forks workers on request. Spawns are serialized; a launcher that died is restarted on the
/// next spawn. Nothing here blocks without a timeout.
final class Launcher: Sendable {
    private let configuration: SandboxConfiguration
    private let state = Mutex(State())

    private struct State: @unchecked Sendable {  // descriptors are owned by the state
        var process: ProcessID?
        var control: FileDescriptor?
        var nextRequest: UInt64 = 0
        /// Exits reported by the launcher that nobody has asked about yet.
        var exits: [ProcessID: ProcessTermination] = [:]
        var restarts = 0
    }

    /// A forked worker: its pid, a pidfd for it, and the host's end of its socket.
    struct Spawned {
        var pid: ProcessID
        var pidfd: FileDescriptor
        var socket: FileDescriptor
    }

    init(configuration: SandboxConfiguration) {
        self.configuration = configuration
    }

    /// The launcher's pid, if it is running.
    var processID: ProcessID? { state.withLock { $0.process } }
    /// How many times a dead launcher was replaced.
    var restarts: Int { state.withLock { $0.restarts } }

    /// Asks the launcher for a worker — a spare it forked ahead, or a new fork — starting the launcher
    /// if needed and restarting it once if it has died. The worker may not have said it is ready yet.
    func spawn() throws(ExecutionError) -> Spawned {
        try state.withLock { (state) throws(ExecutionError) -> Spawned in
            do {
                return try request(&state)
            } catch {
                // The launcher may have died since the last spawn: start a new one and try once more.
                stop(&state)
                state.restarts += 1
                return try request(&state)
            }
        }
    }

    private func request(_ state: inout State) throws(ExecutionError) -> Spawned {
        let control = try start(&state)
        state.nextRequest += 1
        let id = state.nextRequest
        var request = ps_launch_request(magic: UInt32(PS_LAUNCH_MAGIC), kind: UInt32(PS_LAUNCH_SPAWN), id: id)
        let bytes = withUnsafeBytes(of: &request) { Array($0) }
        do { try control.send(bytes) } catch { throw .spawnFailed("launcher: \(error)") }
        let deadline = ContinuousClock.now + configuration.spawnTimeout
        while true {
            guard let (event, descriptors) = try nextEvent(&state, control: control, until: deadline) else {
                throw .spawnFailed("launcher did not answer within \(configuration.spawnTimeout)")
            }
            switch Int(event.kind) {
            case Int(PS_LAUNCH_SPAWNED) where event.id == id && descriptors.count == 2:
                return Spawned(pid: ProcessID(rawValue: event.pid), pidfd: descriptors[0], socket: descriptors[1])
            case Int(PS_LAUNCH_FAILED) where event.id == id:
                throw .spawnFailed("fork in the launcher: \(Errno(rawValue: event.value))")
            default:
                for descriptor in descriptors { try? descriptor.close() }
            }
        }
    }

    /// Reads one launcher event, recording exits; nil on timeout.
    private func nextEvent(_ state: inout State, control: FileDescriptor,
                           until deadline: ContinuousClock.Instant) throws(ExecutionError) -> (ps_launch_event, [FileDescriptor])? {
        let remaining = max(0, Self.milliseconds(deadline - ContinuousClock.now))
        do {
            guard try control.waitReadable(timeoutMilliseconds: Int32(remaining)) else { return nil }
            let message = try control.receive(maximumLength: MemoryLayout<ps_launch_event>.size, maximumDescriptors: 2)
            guard message.bytes.count == MemoryLayout<ps_launch_event>.size, !message.truncated else {
                for descriptor in message.descriptors { try? descriptor.close() }
                throw ExecutionError.spawnFailed(message.bytes.isEmpty ? "the launcher exited" : "malformed launcher event")
            }
            var event = ps_launch_event()
            withUnsafeMutableBytes(of: &event) { $0.copyBytes(from: message.bytes) }
            if event.kind == UInt32(PS_LAUNCH_EXITED) {
                state.exits[ProcessID(rawValue: event.pid)] = ProcessTermination(waitStatus: event.value)
            }
            return (event, message.descriptors)
        } catch let error as ExecutionError {
            throw error
        } catch {
            throw .spawnFailed("launcher: \(error)")
        }
    }

    /// How worker `pid` ended, as the launcher reported it; waits up to `timeout` for the report.
    func termination(of pid: ProcessID, timeout: Duration) -> ProcessTermination? {
        let deadline = ContinuousClock.now + timeout
        return state.withLock { state in
            while true {
                if let termination = state.exits.removeValue(forKey: pid) { return termination }
                guard let control = state.control, (try? nextEvent(&state, control: control, until: deadline)) != nil else {
                    return nil
                }
            }
        }
    }

    /// Forgets exits nobody will ask about (workers the pool discarded without waiting).
    func forgetExit(of pid: ProcessID) {
        _ = state.withLock { $0.exits.removeValue(forKey: pid) }
    }

    private func start(_ state: inout State) throws(ExecutionError) -> FileDescriptor {
        if let control = state.control { return control }
        do {
            let (host, launcher) = try FileDescriptor.socketPair()
            defer { try? launcher.close() }
            let null = try FileDescriptor.open("/dev/null", .readWrite, options: .closeOnExec)
            defer { try? null.close() }
            let path = configuration.workerExecutable
            let pid = try spawnProcess(path, arguments: [path.string, WorkerMain.launcherFlag,
                                                         "--address-space", "\(configuration.workerAddressSpaceBytes)",
                                                         "--open-files", "\(configuration.workerOpenFiles)",
                                                         "--spares", "\(configuration.spareWorkers)"],
                                       environment: ["SWIFT_BACKTRACE=enable=no"],  // a confined worker cannot exec the backtracer
                                       descriptors: [null, null, .standardError, launcher])
            state.process = pid
            state.control = host
            return host
        } catch {
            throw .spawnFailed("starting the launcher \(configuration.workerExecutable): \(error)")
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
        state.exits = [:]
    }

    /// Stops the launcher and with it every worker.
    func shutDown() {
        state.withLock { stop(&$0) }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
