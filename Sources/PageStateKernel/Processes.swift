import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A process this one started or was told about.
public struct ProcessID: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: pid_t
    public init(rawValue: pid_t) { self.rawValue = rawValue }
    public var description: String { "\(rawValue)" }
}

/// How a process ended, decoded from a wait status.
public enum ProcessTermination: Sendable, Hashable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// Decodes a `waitpid` status.
    public init(waitStatus status: Int32) {
        if status & 0x7f == 0 { self = .exited((status >> 8) & 0xff) } else { self = .signaled(status & 0x7f) }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "killed by signal \(signal)\(signalName(signal).map { " (\($0))" } ?? "")"
        }
    }
}

/// The conventional name of a signal (SIGKILL, ...), when it is one of the common ones.
public func signalName(_ signal: Int32) -> String? {
    switch signal {
    case SIGABRT: "SIGABRT"
    case SIGBUS: "SIGBUS"
    case SIGFPE: "SIGFPE"
    case SIGILL: "SIGILL"
    case SIGKILL: "SIGKILL"
    case SIGSEGV: "SIGSEGV"
    case SIGSYS: "SIGSYS"
    case SIGTERM: "SIGTERM"
    case SIGXCPU: "SIGXCPU"
    default: nil
    }
}

/// Starts `path` with `arguments` (the first is the program name) and `environment`; descriptor `i`
/// of the new process is `descriptors[i]`, and no other descriptor is inherited.
///
/// The corresponding C function is `posix_spawn` with `dup2` and `closefrom` file actions.
public func spawnProcess(_ path: FilePath, arguments: [String], environment: [String],
                         descriptors: [FileDescriptor]) throws(Errno) -> ProcessID {
    // Move sources out of the way of targets first (a source below the count could be overwritten).
    var moved: [FileDescriptor] = []
    defer { for descriptor in moved { try? descriptor.close() } }
    var sources: [Int32] = []
    for (target, source) in descriptors.enumerated() {
        if source.rawValue == Int32(target) || source.rawValue >= Int32(descriptors.count) {
            sources.append(source.rawValue)
        } else {
            let copy = try source.duplicateCloseOnExec(atLeast: Int32(descriptors.count))
            moved.append(copy)
            sources.append(copy.rawValue)
        }
    }
    var pid: pid_t = 0
    let cArguments = arguments.map { strdup($0) } + [nil]
    let cEnvironment = environment.map { strdup($0) } + [nil]
    defer { for pointer in cArguments + cEnvironment { free(pointer) } }
    let result = path.withPlatformString { cPath in
        ps_spawn(&pid, cPath, cArguments, cEnvironment, sources, Int32(sources.count))
    }
    guard result == 0 else { throw Errno(rawValue: result) }
    return ProcessID(rawValue: pid)
}

/// Collects the exit of child `pid` (waiting for it when `block`), or nil when it is still running.
///
/// The corresponding C function is `waitpid(pid, &status, block ? 0 : WNOHANG)`.
public func waitForChild(_ pid: ProcessID, block: Bool) throws(Errno) -> ProcessTermination? {
    var status: Int32 = 0
    let result = try valueOrErrno { waitpid(pid.rawValue, &status, block ? 0 : WNOHANG) }
    return result == 0 ? nil : ProcessTermination(waitStatus: status)
}

extension FileDescriptor {
    /// A close-on-exec copy of this descriptor, numbered `atLeast` or higher.
    ///
    /// The corresponding C function is `fcntl(fd, F_DUPFD_CLOEXEC, atLeast)`.
    public func duplicateCloseOnExec(atLeast lowest: Int32 = 0) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { ps_fcntl_int(rawValue, F_DUPFD_CLOEXEC, lowest) })
    }

    /// A descriptor that refers to process `pid` (readable once it has exited), close-on-exec.
    ///
    /// The corresponding C function is `pidfd_open(pid, 0)`.
    public static func processDescriptor(_ pid: ProcessID) throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { ps_pidfd_open(pid.rawValue) })
    }

    /// Sends `signal` to the process this pidfd refers to (never to a process that reused its pid).
    ///
    /// The corresponding C function is `pidfd_send_signal(fd, signal, NULL, 0)`.
    public func sendSignal(_ signal: Int32) throws(Errno) {
        try nothingOrErrno { ps_pidfd_send_signal(rawValue, signal) }
    }

    /// How the process behind this pidfd ended, once it has exited and been reaped (by its parent, or
    /// by the kernel when the parent ignores SIGCHLD); nil before that. Needs Linux 6.15
    /// (`KernelFeatures.pidfdExitStatus`): earlier kernels keep no status and always answer nil.
    ///
    /// The corresponding C function is `ioctl(fd, PIDFD_GET_INFO)` with `PIDFD_INFO_EXIT`.
    public func exitStatus() throws(Errno) -> ProcessTermination? {
        var status: Int32 = 0
        return try valueOrErrno { ps_pidfd_exit_status(rawValue, &status) } == 1 ? ProcessTermination(waitStatus: status) : nil
    }

    /// How the process behind this pidfd ended, waiting until `deadline` for it to exit and be reaped;
    /// nil if it has not by then (or the kernel keeps no exit status, or this is not a pidfd).
    public func waitForExitStatus(until deadline: ContinuousClock.Instant) -> ProcessTermination? {
        while true {
            if let status = try? exitStatus() { return status }
            guard ContinuousClock.now < deadline else { return nil }
            switch try? waitReadable(timeoutMilliseconds: pollTimeout(until: deadline)) {
            case true?:
                // Readable once the process has exited; its status is stored a moment later, when it
                // is released: look again shortly rather than spin on a descriptor that stays readable.
                if let status = try? exitStatus() { return status }
                sleepCallingThread(for: .microseconds(100))
            case false?: continue  // the deadline: one last look
            case nil: return nil
            }
        }
    }

    /// Waits until this descriptor is readable (or hung up) or `timeoutMilliseconds` pass (-1: forever).
    /// Returns whether it became ready.
    ///
    /// The corresponding C function is `poll`.
    public func waitReadable(timeoutMilliseconds: Int32) throws(Errno) -> Bool {
        try waitForAnyReadable([self], timeoutMilliseconds: timeoutMilliseconds).contains(self)
    }
}

/// The descriptors among `descriptors` that are readable or hung up, after waiting at most
/// `timeoutMilliseconds` (-1: forever) for the first. Empty on timeout.
///
/// The corresponding C function is `poll`.
public func waitForAnyReadable(_ descriptors: [FileDescriptor], timeoutMilliseconds: Int32) throws(Errno) -> [FileDescriptor] {
    var entries = descriptors.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
    let ready = try valueOrErrno { poll(&entries, nfds_t(entries.count), timeoutMilliseconds) }
    guard ready > 0 else { return [] }
    return entries.filter { $0.revents != 0 }.map { FileDescriptor(rawValue: $0.fd) }
}

/// Milliseconds from now until `deadline`, rounded up, as `poll` takes them (-1: no deadline, wait forever).
public func pollTimeout(until deadline: ContinuousClock.Instant?) -> Int32 {
    guard let deadline else { return -1 }
    let remaining = (deadline - ContinuousClock.now) / .milliseconds(1)
    return Int32(clamping: Int(max(0, remaining.rounded(.up))))
}

/// Lets another thread that is ready to run on this processor run first. A thread spinning on
/// memory that another process writes calls it now and then: on a machine with few cores that
/// process may be waiting for this very processor.
///
/// The corresponding C function is `sched_yield`.
public func yieldProcessor() {
    _ = sched_yield()
}
