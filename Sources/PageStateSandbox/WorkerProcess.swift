import CPageState
import PageStateKernel
import PageStateMemory
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The host's side of one worker: its pid, pidfd and socket, the versions of its guest's memories
/// it shows, and the allocator files it holds. Used by one execution at a time.
final class WorkerProcess: @unchecked Sendable {
    let pid: ProcessID
    /// The launcher that forked the worker, which counts it until it is closed.
    let launcher: Launcher
    private let pidfd: FileDescriptor
    private let channel: MessageChannel
    /// The versions the worker's mappings show; nil until it received an image.
    var heldHeap: PageMap?
    var heldStable: PageMap?
    /// Allocator files the worker holds, by identity, with the length it knows.
    var sentAllocators: [UInt64: UInt64] = [:]
    /// The worker's next result file, prepared while it runs; sized by `lastResultPages`.
    let resultFile = ResultFilePreparation()
    /// Pages of the worker's last update result.
    var lastResultPages = 0
    /// Whether the last `execute` failed because the worker was gone before it took the request
    /// (killed or out of memory while idle): it then ran nothing and answered no host call, so the
    /// request may run on a new worker. A dying worker cannot tell the host it took a message;
    /// a compromised one that lies gains one run of the request on a fresh worker.
    private(set) var diedBeforeTakingRequest = false
    private var nextRequest: UInt64 = 0
    private var closed = false
    /// Whether the launcher's report of this worker's exit was taken (nothing left to forget).
    private var exitCollected = false

    /// Waits for this worker that found it on the waiting thread's processor, since the last call.
    func takeWaitsBesideWorker() -> Int { channel.takeWaitsBesidePeer() }

    /// Spawns a worker through `launcher` (`Launcher.spawn()`) and waits until it is confined and
    /// ready, as `init(_:from:timeout:)` does. Takes over a worker `launcher` reserved
    /// (`Launcher.reserveWorker()`): released when the worker is closed, or before a failed spawn throws.
    convenience init(launcher: Launcher, timeout: Duration) throws(ExecutionError) {
        let spawned: Launcher.Spawned
        do {
            spawned = try launcher.spawn()
        } catch {
            launcher.releaseWorker()
            throw error
        }
        try self.init(spawned, from: launcher, timeout: timeout)
    }

    /// The host's side of `spawned`, once it is ready: a spare that said `ready` and got its mailbox
    /// ahead (the usual case) needs neither a wait nor a message here. Takes over a worker `launcher`
    /// reserved: released when the worker is closed, or before a failure throws.
    init(_ spawned: Launcher.Spawned, from launcher: Launcher, timeout: Duration) throws(ExecutionError) {
        self.launcher = launcher
        pid = spawned.pid
        pidfd = spawned.pidfd
        channel = spawned.channel
        do {
            if channel.mailbox == nil { try greet(spawned.greeting, timeout: timeout) }
        } catch {
            terminate()
            throw error as? ExecutionError ?? .spawnFailed("worker \(pid): \(error)")
        }
    }

    /// Waits for the worker's `ready` (unless `greeting` is its first message, read ahead), then sends
    /// it a new mailbox.
    private func greet(_ greeting: Result<Received, ProtocolError>?, timeout: Duration) throws {
        let received: Received
        if let greeting {
            received = try greeting.get()
        } else {
            guard try channel.socket.waitReadable(timeoutMilliseconds: Int32(Launcher.milliseconds(timeout))) else {
                throw ExecutionError.spawnFailed("worker \(pid) not ready within \(timeout)")
            }
            received = try channel.receiveFromSocket(limit: 0, maximumDescriptors: 0)
        }
        guard case .message(.ready, _, _) = received else {
            throw ExecutionError.spawnFailed("worker \(pid) failed before it was ready: \(cause(of: received))")
        }
        try channel.sendMailbox(try SharedMailbox.createForHost())
    }

    deinit { closeDescriptors() }

    private func closeDescriptors() {
        guard !closed else { return }
        closed = true
        resultFile.close()
        try? channel.socket.close()
        try? pidfd.close()
        launcher.releaseWorker()
    }

    /// Kills the worker (if still alive), closes its descriptors and drops its exit report.
    func terminate() {
        guard !closed else { return }
        try? pidfd.sendSignal(SIGKILL)
        if !exitCollected { launcher.forgetExit(of: pid) }
        closeDescriptors()  // releases the worker from its launcher: the last use of the launcher
    }

    /// Whether the worker is known to have exited (`workerHasExited`): its death notice, or its pidfd
    /// while no notice is linked. For a worker that has run no guest code (whose notice is not forged).
    var hasExited: Bool { workerHasExited(mailbox: channel.mailbox, pidfd: pidfd) }

    /// The worker's death notice, once its mailbox is attached (valid while this object lives: the
    /// channel's mailbox is never replaced).
    var deathNotice: SharedMailbox.DeathNotice? { channel.mailbox?.deathNotice }

    /// Resident memory: anonymous plus shared pages (`RssAnon + RssShmem` of /proc/PID/status).
    func residentBytes() -> UInt64? { ProcessMemory.residentBytes(of: pid) }

    /// Sends one execution and waits for its result, answering host calls meanwhile. Any failure of
    /// the worker (death, timeout, broken protocol) throws, and the worker must then be discarded.
    func execute(_ message: consuming ExecuteMessage, descriptors: [FileDescriptor], limits: SandboxConfiguration,
                 hostCall: (_ request: [UInt8]) -> HostCallAnswer)
        throws(ExecutionError) -> (ResultMessage, FileDescriptor?)
    {
        nextRequest += 1
        message.requestID = nextRequest
        var answeredHostCall = false
        diedBeforeTakingRequest = false
        do { try channel.send(.execute, message, descriptors: descriptors) } catch {
            diedBeforeTakingRequest = !channel.peerTookEverything
            throw died()
        }
        let deadline = ContinuousClock.now + limits.executionTimeout
        while true {
            let received: Received
            do throws(ExecutionError) {
                // A worker that dies hangs up its socket; the pidfd is watched as well while sleeping.
                guard let next = try channel.receive(limit: limits.maximumResultBytes, maximumDescriptors: 1,
                                                     spin: limits.spinBeforeSleeping, deadline: deadline, watching: [pidfd]) else {
                    terminate()
                    throw ExecutionError.timedOut(milliseconds: Launcher.milliseconds(limits.executionTimeout))
                }
                received = next
            } catch {
                terminate()
                throw error
            }
            switch received {
            case .message(.result, let body, let files):
                do {
                    let (requestID, forgotten, result) = try ResultMessage.decode(body, outputLimit: limits.maximumResultBytes)
                    guard requestID == nextRequest else { throw ProtocolError.unexpected("result for request \(requestID)") }
                    for identity in forgotten { sentAllocators[identity] = nil }
                    return (result, files.first)
                } catch {
                    for file in files { try? file.close() }
                    terminate()
                    throw .malformedResult("\(error)")
                }
            case .message(.hostCall, let body, let files):
                for file in files { try? file.close() }
                let call: HostCallMessage
                do { call = try HostCallMessage(decoding: body, limit: limits.maximumResultBytes) } catch {
                    terminate()
                    throw .malformedResult(error.description)
                }
                let reply: HostCallMessage
                switch hostCall(call.bytes) {
                case .answered(let bytes): reply = HostCallMessage(callID: call.callID, succeeded: true, bytes: bytes)
                case .failed(let message): reply = HostCallMessage(callID: call.callID, succeeded: false, bytes: Array(message.utf8))
                }
                answeredHostCall = true
                do { try channel.send(.hostCallReply, reply) } catch { throw died() }
            case .message(let type, _, let files):
                for file in files { try? file.close() }
                terminate()
                throw .malformedResult("unexpected message \(type)")
            case .violation:
                throw died(received)
            case .closed:
                diedBeforeTakingRequest = !answeredHostCall && !channel.peerTookEverything
                throw died(received)
            }
        }
    }

    /// The worker is gone or going: find out why, then make sure it is dead.
    private func died(_ received: Received? = nil) -> ExecutionError {
        var received = received
        // A dying worker's last words (a seccomp report) are already queued, perhaps behind a few
        // wake-ups; a worker that is alive but failed to take a message must not be waited for (nor
        // read from without end).
        var datagrams = 0
        while received == nil, datagrams < 8, (try? channel.socket.waitReadable(timeoutMilliseconds: 100)) == true {
            datagrams += 1
            received = try? channel.receiveFromSocket(limit: 0, maximumDescriptors: 0)
            if case .message(.wake, _, _)? = received { received = nil }
        }
        let error = cause(of: received ?? .closed)
        terminate()
        return error
    }

    /// Why the worker stopped: its seccomp report if it wrote one, else how the launcher saw it end.
    private func cause(of received: Received) -> ExecutionError {
        if case .violation(let report) = received {
            try? pidfd.sendSignal(SIGKILL)
            _ = termination()
            if report.kind == UInt32(PS_VIOLATION_ABORT) { return .crashed(signal: SIGABRT) }
            return .policyViolation(syscall: Self.syscallName(report.syscall))
        }
        try? pidfd.sendSignal(SIGKILL)
        switch termination() {
        case .signaled(SIGSYS): return .policyViolation(syscall: "unknown (the kernel did not say)")
        case .signaled(let signal): return .crashed(signal: signal)
        case .exited(let status): return .workerExited(status: status)
        case nil: return .workerExited(status: -1)
        }
    }

    /// How the (killed) worker ended, as its pidfd or the launcher tells within two seconds.
    private func termination() -> ProcessTermination? {
        let termination = launcher.termination(of: pid, pidfd: pidfd, timeout: .seconds(2))
        exitCollected = termination != nil
        return termination
    }

    static func syscallName(_ number: Int32) -> String {
        guard let name = ps_syscall_name(number) else { return "#\(number)" }
        defer { free(name) }
        return String(cString: name)
    }
}

/// The host's answer to a guest's host call.
enum HostCallAnswer {
    case answered([UInt8])
    /// The handler threw; the guest sees `trapped("host call failed: MESSAGE")`.
    case failed(String)
}

/// Resident memory of processes, from /proc.
enum ProcessMemory {
    /// `RssAnon + RssShmem` of /proc/PID/status in bytes, or nil when the process is gone.
    static func residentBytes(of pid: ProcessID) -> UInt64? {
        guard let status = try? readProcFile(FilePath("/proc/\(pid.rawValue)/status")), !status.isEmpty else { return nil }
        var total: UInt64 = 0
        for line in status.split(separator: "\n")
        where line.hasPrefix("RssAnon:") || line.hasPrefix("RssShmem:") {
            if let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ UInt64($0) }) { total += kilobytes * 1024 }
        }
        return total
    }
}
