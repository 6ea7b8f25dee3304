import PageStateKernel
import PageStateMemory

/// Why an execution did not produce an outcome. The guest's state is unchanged in every case.
///
/// The first group is deterministic — a function of the guest's state and the request — and is the
/// same whether the guest runs sandboxed or in-process. The second group means the worker failed or
/// misbehaved; the pool has already discarded that worker.
public enum ExecutionError: Error, Hashable, CustomStringConvertible {
    // Deterministic outcomes.
    /// The entry point threw; the description is the error's.
    case trapped(String)
    case unknownEntryPoint(String)
    /// Growth beyond the pages the execution was allowed.
    case memoryAllowanceExhausted(requestedPages: UInt64, remainingPages: UInt64)
    /// Growth beyond a memory's capacity.
    case capacityExceeded(memory: String, requestedPages: UInt64, capacityPages: UInt64)
    /// A checked access outside a memory's current size.
    case outOfBounds(memory: String, offset: UInt64, count: UInt64, size: UInt64)
    case dirtyPageLimitExceeded(limit: UInt64, written: UInt64)

    // The worker failed or misbehaved.
    /// The seccomp filter stopped a forbidden system call (named when the kernel told us).
    case policyViolation(syscall: String)
    /// The worker died of a signal (SIGSEGV, SIGABRT, ...).
    case crashed(signal: Int32)
    case workerExited(status: Int32)
    /// The execution did not finish in time; the worker was killed.
    case timedOut(milliseconds: Int)
    /// The worker's reply broke the protocol or its size limits.
    case malformedResult(String)
    /// The worker's result named pages it does not own or cannot have produced.
    case rejectedPages(String)
    /// The worker runtime could not do its part (for example out of descriptors while writing results).
    case workerFailure(String)
    /// No worker could be started.
    case spawnFailed(String)
    /// A host-side system error.
    case system(String)

    /// Whether this error says nothing about the worker's health (it may keep serving).
    public var isDeterministic: Bool {
        switch self {
        case .trapped, .unknownEntryPoint, .memoryAllowanceExhausted, .capacityExceeded, .outOfBounds,
             .dirtyPageLimitExceeded: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .trapped(let message): "guest trapped: \(message)"
        case .unknownEntryPoint(let name): "no entry point named \(name)"
        case .memoryAllowanceExhausted(let requested, let remaining):
            "memory allowance exhausted: asked for \(requested) pages, \(remaining) remain"
        case .capacityExceeded(let memory, let requested, let capacity):
            "\(memory) cannot grow to \(requested) pages (capacity \(capacity))"
        case .outOfBounds(let memory, let offset, let count, let size):
            "\(memory) access of \(count) bytes at \(offset) is outside its \(size) bytes"
        case .dirtyPageLimitExceeded(let limit, let written): "update wrote \(written) pages, limit \(limit)"
        case .policyViolation(let syscall): "policy violation: system call \(syscall) is not allowed"
        case .crashed(let signal): "worker crashed: \(signalName(signal) ?? "signal \(signal)")"
        case .workerExited(let status): "worker exited with status \(status)"
        case .timedOut(let milliseconds): "execution timed out after \(milliseconds) ms; worker killed"
        case .malformedResult(let reason): "malformed result from worker: \(reason)"
        case .rejectedPages(let reason): "worker returned pages it does not own: \(reason)"
        case .workerFailure(let reason): "worker failure: \(reason)"
        case .spawnFailed(let reason): "could not start a worker: \(reason)"
        case .system(let reason): "host error: \(reason)"
        }
    }
}

/// What a guest's checked memory operations throw; an entry point may catch them (growth failing
/// is part of a deterministic guest's life) or let them end the execution.
public enum GuestTrap: Error, Hashable {
    case outOfBounds(memory: String, offset: UInt64, count: UInt64, size: UInt64)
    case memoryAllowanceExhausted(requestedPages: UInt64, remainingPages: UInt64)
    case capacityExceeded(memory: String, requestedPages: UInt64, capacityPages: UInt64)

    var executionError: ExecutionError {
        switch self {
        case .outOfBounds(let memory, let offset, let count, let size): .outOfBounds(memory: memory, offset: offset, count: count, size: size)
        case .memoryAllowanceExhausted(let requested, let remaining): .memoryAllowanceExhausted(requestedPages: requested, remainingPages: remaining)
        case .capacityExceeded(let memory, let requested, let capacity): .capacityExceeded(memory: memory, requestedPages: requested, capacityPages: capacity)
        }
    }
}
