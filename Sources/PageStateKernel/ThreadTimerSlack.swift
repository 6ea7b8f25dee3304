import CPageState

/// Lets the calling thread's timed waits (`poll`, `nanosleep`) end up to `slack` late, so that the
/// kernel serves them with an interrupt it takes anyway (another timer's, a tick) rather than one
/// of their own; nil: back to the thread's default (the slack of the thread that created it, 50 µs
/// unless changed). Open to every thread for itself, so it does not fail in practice.
///
/// The corresponding C function is `prctl(PR_SET_TIMERSLACK)`.
public func setCallingThreadTimerSlack(_ slack: Duration?) {
    // Whole nanoseconds, at least 1 (0 asks for the default).
    let nanoseconds = slack.map { UInt(clamping: max(1, MonotonicInstant.nanoseconds(in: $0))) } ?? 0
    _ = ps_set_timer_slack(nanoseconds)
}

/// The calling thread's timer slack.
///
/// The corresponding C function is `prctl(PR_GET_TIMERSLACK)`.
public func callingThreadTimerSlack() -> Duration {
    .nanoseconds(Int64(max(0, ps_get_timer_slack())))
}
