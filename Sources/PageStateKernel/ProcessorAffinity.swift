import CPageState
import SystemPackage

/// The processor the calling thread runs on at this instant (it may move at any time), or nil
/// where the system cannot tell. Normally costs no system call: glibc reads the thread's rseq area
/// or the vDSO.
///
/// The corresponding C function is `sched_getcpu`.
public func currentProcessor() -> UInt32? {
    let processor = ps_current_cpu()
    return processor < 0 ? nil : UInt32(processor)
}

/// The processors `thread` may run on, ascending (nil: the calling thread; a process's id names
/// its main thread).
///
/// The corresponding C function is `sched_getaffinity`.
public func allowedProcessors(of thread: ProcessID? = nil) throws(Errno) -> [UInt32] {
    var set = [UInt8](repeating: 0, count: processorSetBytes)
    try nothingOrErrno { ps_sched_getaffinity(thread?.rawValue ?? 0, set.count, &set) }
    return (0..<UInt32(set.count * 8)).filter { set[Int($0 / 8)] & (1 << ($0 % 8)) != 0 }
}

/// Lets `thread` (nil: the calling thread) run only on `processors`; a running thread on another
/// processor is moved at once. Processors past the 1,024 a `cpu_set_t` holds are ignored.
///
/// The corresponding C function is `sched_setaffinity`.
public func setAllowedProcessors(_ processors: [UInt32], of thread: ProcessID? = nil) throws(Errno) {
    var set = [UInt8](repeating: 0, count: processorSetBytes)
    for processor in processors where Int(processor / 8) < set.count {
        set[Int(processor / 8)] |= 1 << (processor % 8)
    }
    try nothingOrErrno { ps_sched_setaffinity(thread?.rawValue ?? 0, set.count, set) }
}

/// Bytes of a `cpu_set_t`: 1,024 processors.
private let processorSetBytes = 128

/// Moves the calling thread off `processor` at once, to another processor it is allowed, and
/// leaves what it is allowed as it was: narrows the set (the kernel migrates the thread), then
/// restores it (which moves nothing). Returns false when no other processor is allowed.
/// A change another thread makes to this thread's set in between is undone.
public func leaveProcessor(_ processor: UInt32) throws(Errno) -> Bool {
    let allowed = try allowedProcessors()
    let others = allowed.filter { $0 != processor }
    guard !others.isEmpty, others.count < allowed.count else { return false }
    try setAllowedProcessors(others)
    try setAllowedProcessors(allowed)
    return true
}
