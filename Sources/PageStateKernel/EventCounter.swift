import CPageState
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension FileDescriptor {
    /// A kernel event counter (starting at zero, closed on exec): one thread sleeps in
    /// `takeEventCount()` until another adds to it with `addToEventCounter(_:)`.
    ///
    /// The corresponding C function is `eventfd(0, EFD_CLOEXEC)`.
    public static func eventCounter() throws(Errno) -> FileDescriptor {
        FileDescriptor(rawValue: try valueOrErrno { ps_eventfd_cloexec() })
    }

    /// Adds `amount` (at least 1) to an event counter, waking a thread waiting in `takeEventCount()`.
    ///
    /// The corresponding C function is `write(fd, &amount, 8)`.
    public func addToEventCounter(_ amount: UInt64 = 1) throws(Errno) {
        var value = amount
        try nothingOrErrno { Glibc.write(rawValue, &value, MemoryLayout<UInt64>.size) }
    }

    /// Waits until an event counter is not zero, then returns its value and resets it to zero.
    ///
    /// The corresponding C function is `read(fd, &value, 8)`.
    public func takeEventCount() throws(Errno) -> UInt64 {
        var value: UInt64 = 0
        try nothingOrErrno { Glibc.read(rawValue, &value, MemoryLayout<UInt64>.size) }
        return value
    }
}
