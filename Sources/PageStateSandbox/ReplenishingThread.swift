import PageStateKernel
import Synchronization
import SystemPackage

/// A thread that runs `work` `delay` after each wake-up: a launcher's requests for replacement
/// spares, or the pool's making spares into ready workers (`ReadyWorkers`), kept off the spawning
/// thread. The thread runs under `SCHED_BATCH`, so waking it never
/// takes the waker's processor (a Dispatch timer woke Dispatch's manager thread, which did;
/// performance.md, session 18). Wake-ups that arrive while it sleeps or works are merged into one
/// more run. `work` is given a descriptor that turns readable when the thread is woken again or
/// stopped: work that waits should wait on it as well and return.
///
/// For `stayAwake` after each run (counted in looks of `delay`: up to twice as long with their
/// slack, below) the thread looks for wake-ups every `delay` instead of sleeping
/// until one comes, and a wake-up is then only its time stored: waking a sleeping thread (a `write` to
/// an event counter, whose kernel wake-up signals the other processor) cost ~4.5 µs at the median
/// and ~14 µs at p99 here, the largest part of a paced spawn's tail (performance.md, session 26).
/// Once quiet for `stayAwake` it sleeps, and the next wake-up makes that `write`.
///
/// Its looks have a timer slack of `delay`: each may end up to `delay` late, at an interrupt the
/// processor takes anyway, instead of raising one of its own (a timer interrupt cost ~16 µs at the
/// median on these machines, and a spawning thread that one lands on pays it). The delay and
/// `work`'s waits keep the default slack: later refills made bursts of spawns wait longer for forks
/// (performance.md, session 40).
final class ReplenishingThread: Sendable {
    private let thread: BackgroundThread
    /// What wakes the thread: an owner that keeps it can wake the thread without this object
    /// (`OnDemandReplenishingThread`'s wake-ups, one dependent memory read fewer).
    let signals: Signals

    /// What the waking side and the thread tell each other, without the kernel, and the event
    /// counter a wake-up writes to when the thread is not looking. Owns the counter: it is closed
    /// when the last holder lets go, so a wake-up after `stop()` writes to a counter nobody reads
    /// rather than to a descriptor closed or reused.
    ///
    /// Invariant: after its compare-exchange on `askedAt` (which stores its time, or finds an
    /// earlier wake-up's not yet taken), a wake-up either finds `lookingEveryDelay` true (the thread
    /// will take `askedAt` within one look: `delay`, up to twice that with the looks' slack) or
    /// writes to the event counter (the thread, asleep or about to sleep, wakes). All are
    /// sequentially consistent, so the thread's store of `lookingEveryDelay = false` followed by its
    /// exchange of `askedAt` cannot miss a wake-up's compare-exchange followed by its load of
    /// `lookingEveryDelay`. Only the thread clears `askedAt`.
    final class Signals: Sendable {
        /// When the earliest wake-up not yet seen by the thread came (`MonotonicInstant` nanoseconds,
        /// at least 1); 0: none.
        let askedAt = Atomic<UInt64>(0)
        /// The thread looks for `askedAt` every `delay` (so a wake-up need not write).
        let lookingEveryDelay = Atomic<Bool>(false)
        /// Wake-ups that found the thread not looking and wrote (or tried to) to the event counter.
        let writes = Atomic<Int>(0)
        /// Closed when the last holder lets go (not by `stop()`).
        let wakeUps: FileDescriptor

        fileprivate init(wakeUps: FileDescriptor) { self.wakeUps = wakeUps }

        deinit { try? wakeUps.close() }

        /// Asks for one more run of `work`; does not wait. An atomic store of the time while the
        /// thread is looking every `delay`; otherwise also one `write` to the event counter.
        func wake() {
            let now = max(1, MonotonicInstant.now.nanoseconds)  // the vDSO's clock, inlined (no runtime call)
            _ = askedAt.compareExchange(expected: 0, desired: now, ordering: .sequentiallyConsistent)
            guard !lookingEveryDelay.load(ordering: .sequentiallyConsistent) else { return }
            writes.add(1, ordering: .relaxed)
            try? wakeUps.addToEventCounter()
        }
    }

    /// Added to the counter by `stop()`; wake-ups add 1 each and never come near it.
    private static let stopAmount: UInt64 = 1 << 40

    /// A thread named `name` (as `ps` and `perf` show it) that runs `work` `delay` after each wake-up.
    init(name: String, delay: Duration, stayAwake: Duration, work: @escaping @Sendable (_ wokenAgain: FileDescriptor) -> Void) throws(Errno) {
        let signals = Signals(wakeUps: try FileDescriptor.eventCounter())  // closes it if the thread cannot be made
        self.signals = signals
        let lookMilliseconds = Int32(max(1, (delay / .milliseconds(1)).rounded(.up)))
        let delayNanoseconds = MonotonicInstant.nanoseconds(in: delay)
        let awakeLooks = Int((stayAwake / delay).rounded(.up))
        thread = try BackgroundThread(name: name, policy: .batch) {
            var quietLooks = awakeLooks  // asleep until the first wake-up
            var looksHaveSlack = false
            while true {
                let looking = quietLooks < awakeLooks
                if looking != looksHaveSlack {
                    setCallingThreadTimerSlack(looking ? delay : nil)
                    looksHaveSlack = looking
                }
                signals.lookingEveryDelay.store(looking, ordering: .sequentiallyConsistent)
                var askedAt = signals.askedAt.exchange(0, ordering: .sequentiallyConsistent)
                if askedAt == 0 {
                    guard Self.takeWakeUps(from: signals.wakeUps, waitingMilliseconds: looking ? lookMilliseconds : -1) else { return }
                    askedAt = signals.askedAt.exchange(0, ordering: .sequentiallyConsistent)
                }
                guard askedAt != 0 else {
                    if looking { quietLooks += 1 }
                    continue
                }
                signals.lookingEveryDelay.store(false, ordering: .sequentiallyConsistent)  // work's waits end at a wake-up
                if looksHaveSlack {
                    setCallingThreadTimerSlack(nil)  // the delay and `work`'s waits end on time
                    looksHaveSlack = false
                }
                // `delay` after the wake-up (a look may find it late): the spawn that woke the thread is over by then.
                let (due, past) = askedAt.addingReportingOverflow(delayNanoseconds)
                let now = MonotonicInstant.now.nanoseconds
                if !past && due > now { sleepCallingThread(for: .nanoseconds(Int64(clamping: due - now))) }
                // Writes of wake-ups already counted (this run's, or ones during the delay, which
                // left `askedAt` set for one more run) must not end `work`'s waits.
                guard Self.takeWakeUps(from: signals.wakeUps, waitingMilliseconds: 0) else { return }
                work(signals.wakeUps)
                quietLooks = 0
            }
        }
    }

    /// Waits up to `milliseconds` (-1: no limit) for the counter to be readable and empties it if
    /// it is; false once `stop()` was called (or the counter failed, which a valid one does not:
    /// spawns then fork on demand). `poll` is retried on `EINTR`.
    private static func takeWakeUps(from wakeUps: FileDescriptor, waitingMilliseconds milliseconds: Int32) -> Bool {
        do {
            guard try wakeUps.waitReadable(timeoutMilliseconds: milliseconds) else { return true }
            return try wakeUps.takeEventCount() < stopAmount
        } catch {
            return false
        }
    }

    /// The thread's kernel id, once it has started running.
    var kernelThreadID: Int32? { thread.kernelThreadID }

    /// Wake-ups so far that had to write to the event counter (the thread was not looking).
    var wakeUpWrites: Int { signals.writes.load(ordering: .relaxed) }

    /// Whether the thread looks for wake-ups every `delay` now (for tests).
    var isLookingEveryDelay: Bool { signals.lookingEveryDelay.load(ordering: .sequentiallyConsistent) }

    /// Asks for one more run of `work` (`Signals.wake()`); does not wait.
    func wake() { signals.wake() }

    /// Ends the thread (after its current run, if one is under way) and waits for it. Not from
    /// `work`. Later wake-ups do nothing.
    func stop() {
        try? signals.wakeUps.addToEventCounter(Self.stopAmount)
        thread.join()
    }
}
