import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Page faults this process has taken so far, minor and major, its threads (live and exited)
/// included. The kernel counts a fault for the thread that took it — a write by the process's own
/// code or by a system call writing into its memory on its behalf — once the fault is resolved.
///
/// The corresponding C function is `getrusage(RUSAGE_SELF)` (`ru_minflt + ru_majflt`).
/// - Complexity: O(threads of the process), in the kernel.
public func processPageFaults() throws(Errno) -> UInt64 {
    var usage = rusage()
    try nothingOrErrno { getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) }
    return UInt64(usage.ru_minflt) &+ UInt64(usage.ru_majflt)
}
