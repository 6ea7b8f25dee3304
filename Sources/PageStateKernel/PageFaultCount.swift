import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Whose page faults `pageFaults(of:)` counts.
public enum PageFaultScope: Sendable, Hashable {
    /// Every thread of the process, live and exited (`RUSAGE_SELF`; O(threads), ~0.9 µs here).
    case process
    /// The calling thread only (`RUSAGE_THREAD`; ~0.45 µs here): enough in a single-threaded process.
    case callingThread
}

/// Page faults taken so far, minor and major. The kernel counts a fault for the thread that took
/// it — a write by the thread's own code, or by a system call writing into memory on its behalf —
/// once the fault is resolved.
///
/// The corresponding C function is `getrusage` (`ru_minflt + ru_majflt`).
public func pageFaults(of scope: PageFaultScope) throws(Errno) -> UInt64 {
    var usage = rusage()
    let who = scope == .process ? __rusage_who_t(RUSAGE_SELF.rawValue) : __rusage_who_t(PS_RUSAGE_THREAD)
    try nothingOrErrno { getrusage(who, &usage) }
    return UInt64(usage.ru_minflt) &+ UInt64(usage.ru_majflt)
}
