// Imported here although nothing of its own is used: with DescriptorPassing's `timeval`, a release
// build's type checker took `timespec` below for CPageState's (its header includes the same system
// headers), and an inlinable function may use only what its own file imports.
import CPageState

#if canImport(Glibc)
import Glibc
#endif

/// A reading of the boot-time clock (the clock `ContinuousClock` reads on Linux: monotonic, and
/// counting time the machine spent suspended), in nanoseconds, for hot paths that stamp and time
/// what they do. Reading it and subtracting two readings are inlinable (a call to `clock_gettime`,
/// which the vDSO answers without a system call, and integer arithmetic), where
/// `ContinuousClock.now` and `Instant - Instant` call into the Swift runtime library. Not measured
/// alone: swapped in together with another change, it made no difference a paced spawn's p50 could
/// show (performance.md, session 38); what it also gives is plain `UInt64` nanoseconds to store.
///
/// The corresponding C function is `clock_gettime(CLOCK_BOOTTIME)`.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    /// Nanoseconds since boot (as this process's time namespace sees it).
    public var nanoseconds: UInt64

    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current reading.
    @inlinable public static var now: MonotonicInstant {
        var reading = timespec()
        clock_gettime(CLOCK_BOOTTIME, &reading)  // cannot fail with this clock and a valid pointer
        return MonotonicInstant(nanoseconds: UInt64(reading.tv_sec) &* 1_000_000_000 &+ UInt64(reading.tv_nsec))
    }

    /// Nanoseconds from `earlier` to this reading; 0 if `earlier` is later.
    @inlinable public func nanoseconds(since earlier: MonotonicInstant) -> UInt64 {
        nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
    }

    /// A duration in whole nanoseconds: 0 for a negative one, `UInt64.max` for one of more than
    /// ~584 years.
    public static func nanoseconds(in duration: Duration) -> UInt64 {
        guard duration > .zero else { return 0 }
        // `components` traps past `Int64.max` seconds; `UInt64` nanoseconds end at ~18,446,744,073.7 s.
        guard duration < .seconds(18_446_744_074) else { return .max }
        let (seconds, attoseconds) = duration.components  // both non-negative here
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || carry ? .max : total
    }

    @inlinable public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}
