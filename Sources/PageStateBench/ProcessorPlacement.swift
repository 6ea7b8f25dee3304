import PageStateKernel
import SystemPackage

/// Where a sandboxed execution's two ends run while the bench times it: the host's calling thread
/// on one processor, the worker on another. On these virtual machines one processor can run the same
/// Swift code 1.4-1.8x slower than the other for minutes at a time (performance.md, session 28), so
/// a sandboxed execution (both processors) timed against an in-process one (the host's processor
/// only) gives a ratio that depends on which processor the host happened to be on. Timing both
/// ways round and weighing the two alike removes that.
struct ProcessorPlacement {
    let host: UInt32
    let worker: UInt32

    /// The first two processors the calling thread may use, both ways round; empty when it may use
    /// fewer than two.
    static func bothWays(of allowed: [UInt32]) -> [ProcessorPlacement] {
        guard allowed.count >= 2 else { return [] }
        return [ProcessorPlacement(host: allowed[0], worker: allowed[1]), ProcessorPlacement(host: allowed[1], worker: allowed[0])]
    }

    /// Pins the calling thread to `host` and the process `worker` (its main thread: workers have
    /// one) to `worker`.
    func apply(worker process: ProcessID) throws(Errno) {
        try setAllowedProcessors([host])
        try setAllowedProcessors([worker], of: process)
    }
}
