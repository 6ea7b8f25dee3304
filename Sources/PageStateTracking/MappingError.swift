import SystemPackage

/// The mapping operation a system error came from.
public enum MappingOperation: String, Sendable, Hashable {
    case reserve = "reserve address range"
    case mapZeros = "map zero pages"
    case mapFile = "map file pages"
    case unmap = "unmap"
}

/// Why a guest memory could not be mapped or changed.
public enum MappingError: Error, Hashable, CustomStringConvertible {
    /// A system call failed (ENOMEM when the address space or `vm.max_map_count` runs out, ...).
    case system(MappingOperation, Errno)
    /// The memory needs more pages than the reservation holds.
    case capacityExceeded(requestedPages: UInt64, capacityPages: UInt64)

    public var description: String {
        switch self {
        case .system(let operation, let errno): "mapping: \(operation.rawValue) failed: \(errno)"
        case .capacityExceeded(let requested, let capacity):
            "mapping: \(requested) pages requested, the reservation holds \(capacity)"
        }
    }
}
