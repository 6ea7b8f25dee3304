import CPageState
import PageStateTracking
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The `main` of a worker executable. The host starts the executable once, in launcher mode
/// (`--pagestate-launcher`, its control socket at descriptor 3); the launcher forks one worker per
/// guest, and each worker returns from the launcher's fork path into `WorkerServer` with its own
/// socket at descriptor 3.
///
/// ```swift
/// var runtime = WorkerRuntime()
/// runtime.register("hello") { context in Array("hello".utf8) }
/// WorkerMain.run(runtime)
/// ```
public enum WorkerMain {
    static let launcherFlag = "--pagestate-launcher"
    /// `--exits pidfd`: the kernel reaps workers (`WorkerExitReporting.pidfd`); otherwise the launcher does.
    static let exitsFlag = "--exits"

    public static func run(_ runtime: WorkerRuntime) -> Never {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2, arguments[1] == launcherFlag else {
            _ = try? FileDescriptor.standardError.writeAll(
                "\(arguments.first ?? "worker"): a PageState worker; started by a SandboxPool, not by hand\n".utf8)
            exit(64)
        }
        var limits = ps_worker_limits(address_space_bytes: 0, open_files: 0, core_bytes: 0)
        var kernelReaps: Int32 = 0
        var index = 2
        while index + 1 < arguments.count {
            let value = UInt64(arguments[index + 1]) ?? 0
            switch arguments[index] {
            case "--address-space": limits.address_space_bytes = value
            case "--open-files": limits.open_files = value
            case exitsFlag: kernelReaps = arguments[index + 1] == "pidfd" ? 1 : 0
            default: break
            }
            index += 2
        }
        // Lazily computed values a confined worker could not compute (they read /proc and /sys):
        // computed once here, inherited by every worker.
        _ = TrackerKind.best
        _ = MappedMemory.copyThreads
        let socket = ps_launcher_serve(3, &limits, kernelReaps, TrackerKind.best == .protectionFaults ? 1 : 0)
        guard socket >= 0 else {
            let failure = errno
            if failure != 0 { _ = try? FileDescriptor.standardError.writeAll("pagestate launcher: \(Errno(rawValue: failure))\n".utf8) }
            exit(failure == 0 ? 0 : 1)
        }
        // A forked worker, single-threaded, not yet confined.
        let server: WorkerServer
        do { server = try WorkerServer(socket: FileDescriptor(rawValue: socket), runtime: runtime) } catch {
            exit(WorkerServer.ExitStatus.setupFailed.rawValue)
        }
        server.run()
    }
}
