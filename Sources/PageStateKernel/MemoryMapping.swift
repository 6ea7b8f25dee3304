import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Memory protection of a mapping (`PROT_*`).
public struct MemoryProtection: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let none: MemoryProtection = []
    public static let read = MemoryProtection(rawValue: PROT_READ)
    public static let write = MemoryProtection(rawValue: PROT_WRITE)
}

/// Flags of a mapping (`MAP_*`).
public struct MappingFlags: OptionSet, Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let shared = MappingFlags(rawValue: MAP_SHARED)
    public static let `private` = MappingFlags(rawValue: MAP_PRIVATE)
    public static let anonymous = MappingFlags(rawValue: MAP_ANONYMOUS)
    public static let fixed = MappingFlags(rawValue: MAP_FIXED)
    public static let noReserve = MappingFlags(rawValue: MAP_NORESERVE)
}

/// Maps `length` bytes of `descriptor` at `offset` (or anonymous memory when `descriptor` is nil).
///
/// The corresponding C function is `mmap`.
public func mapMemory(
    at address: UnsafeMutableRawPointer? = nil, length: Int, protection: MemoryProtection,
    flags: MappingFlags, descriptor: FileDescriptor? = nil, offset: UInt64 = 0
) throws(Errno) -> UnsafeMutableRawPointer {
    guard let pointer = mmap(address, length, protection.rawValue, flags.rawValue,
                             descriptor?.rawValue ?? -1, off_t(offset)),
          pointer != MAP_FAILED
    else { throw Errno(rawValue: errno) }
    return pointer
}

/// Removes a mapping.
///
/// The corresponding C function is `munmap`.
public func unmapMemory(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
    try nothingOrErrno { munmap(address, length) }
}

/// Changes the protection of mapped pages.
///
/// The corresponding C function is `mprotect`.
public func protectMemory(_ address: UnsafeMutableRawPointer, length: Int, _ protection: MemoryProtection) throws(Errno) {
    try nothingOrErrno { mprotect(address, length, protection.rawValue) }
}

/// The system page size in bytes.
///
/// The corresponding C function is `sysconf(_SC_PAGESIZE)`.
public var systemPageSize: Int { sysconf(Int32(_SC_PAGESIZE)) }
