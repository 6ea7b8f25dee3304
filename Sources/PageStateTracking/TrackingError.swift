import SystemPackage

/// The tracking operation a system error came from.
public enum TrackingOperation: String, Sendable, Hashable {
    case openUserfaultfd = "open userfaultfd"
    case negotiateFeatures = "negotiate userfaultfd features"
    case register = "register range"
    case writeProtect = "write-protect range"
    case openPagemap = "open /proc/self/pagemap"
    case scan = "scan written pages"
    case countFaults = "count page faults"
    case installHandler = "install SIGSEGV handler"
}

/// Why dirty-page tracking failed or an execution's writes were refused.
public enum TrackingError: Error, Hashable, CustomStringConvertible {
    /// The mechanism is not available on this kernel or to this process; the string says why.
    case unavailable(String)
    case system(TrackingOperation, Errno)
    /// The execution wrote more pages than it was allowed to; its writes were rolled back.
    case dirtyPageLimitExceeded(limit: Int, written: Int)
    /// An execution started before the previous one was committed or rolled back.
    case unsettledExecution

    public var description: String {
        switch self {
        case .unavailable(let reason): "tracking: unavailable: \(reason)"
        case .system(let operation, let errno): "tracking: \(operation.rawValue) failed: \(errno)"
        case .dirtyPageLimitExceeded(let limit, let written):
            "tracking: execution wrote \(written) pages, more than its limit of \(limit)"
        case .unsettledExecution: "tracking: commit or roll back the previous execution first"
        }
    }
}
