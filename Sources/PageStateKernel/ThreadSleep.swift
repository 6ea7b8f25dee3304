#if canImport(Glibc)
import Glibc
#endif

/// Puts the calling thread to sleep for `duration` (negative: not at all); an interrupting signal
/// does not cut the sleep short.
///
/// The corresponding C function is `nanosleep`.
public func sleepCallingThread(for duration: Duration) {
    let (seconds, attoseconds) = duration.components
    guard seconds > 0 || attoseconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
