#if canImport(Glibc)
import Glibc
#endif

/// A reading of the monotonic clock, in nanoseconds, for hot paths that stamp and time what they do.
/// Reading it and subtracting two readings inline into the caller (a `clock_gettime` through the
/// vDSO and integer arithmetic), where `ContinuousClock.now` and `Instant - Instant` call into the
/// Swift runtime library: code that a spawn after a few milliseconds of sleep finds cold
/// (performance.md, session 38). The clock does not advance while the machine is suspended.
///
/// The corresponding C function is `clock_gettime(CLOCK_MONOTONIC)`.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    /// Nanoseconds since an unspecified point (the same for every process of the machine).
    public var nanoseconds: UInt64

    @inlinable public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current reading.
    @inlinable public static var now: MonotonicInstant {
        var reading = timespec()
        clock_gettime(CLOCK_MONOTONIC, &reading)  // cannot fail with this clock and a valid pointer
        return MonotonicInstant(nanoseconds: UInt64(reading.tv_sec) &* 1_000_000_000 &+ UInt64(reading.tv_nsec))
    }

    /// Nanoseconds from `earlier` to this reading; 0 if `earlier` is later.
    @inlinable public func nanoseconds(since earlier: MonotonicInstant) -> UInt64 {
        nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
    }

    /// A duration in whole nanoseconds (0 for a negative one; saturating for one of centuries).
    public static func nanoseconds(in duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }  // both components share the sign
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow || carry ? .max : total
    }

    @inlinable public static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}
