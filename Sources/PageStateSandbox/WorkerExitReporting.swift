import PageStateKernel

/// How the host learns how a worker ended (crashed, killed by its seccomp filter, killed by the pool).
public enum WorkerExitReporting: Sendable, Hashable {
    /// `.pidfd` where the kernel supports it (`KernelFeatures.pidfdExitStatusAvailable`), else `.launcher`.
    case automatic
    /// The launcher ignores SIGCHLD, so the kernel reaps each worker as it exits, and the host reads
    /// the exit status from the worker's pidfd (`PIDFD_INFO_EXIT`, Linux 6.15+). The launcher does no
    /// work per exit and no worker is ever a zombie.
    case pidfd
    /// The launcher reaps its children with `waitpid(-1)` on SIGCHLD and reports each exit over its
    /// control socket. Each reap walks every child: ~160 µs of launcher time per exit at 1,000 workers.
    case launcher

    /// What `.automatic` means on this machine.
    var resolved: WorkerExitReporting {
        self == .automatic ? (KernelFeatures.pidfdExitStatusAvailable ? .pidfd : .launcher) : self
    }
}
