import PageStateKernel
import Synchronization
import SystemPackage

/// A thread that runs `work` a moment after each wake-up: the launcher's requests for replacement
/// spares, kept off the spawning thread. The thread runs under `SCHED_BATCH`, so waking it never
/// takes the waker's processor (a Dispatch timer woke Dispatch's manager thread, which did;
/// performance.md, session 18). Wake-ups that arrive while it sleeps or works are merged into one
/// more run. `work` is given a descriptor that turns readable when the thread is woken again or
/// stopped: work that waits should wait on it as well and return.
///
/// For `stayAwake` after each run the thread looks for wake-ups every `delay` instead of sleeping
/// until one comes, and a wake-up is then only a flag set: waking a sleeping thread (a `write` to
/// an event counter, whose kernel wake-up signals the other processor) cost ~4.5 µs at the median
/// and ~14 µs at p99 here, the largest part of a paced spawn's tail (performance.md, session 26).
/// Once quiet for `stayAwake` it sleeps, and the next wake-up makes that `write`.
final class ReplenishingThread: Sendable {
    private let wakeUps: FileDescriptor
    private let thread: BackgroundThread
    private let signals = Signals()

    /// What the waking side and the thread tell each other, without the kernel.
    ///
    /// Invariant: a wake-up either finds `lookingEveryDelay` true after setting `asked` (the thread
    /// will see `asked` within one `delay`) or writes to the event counter (the thread, asleep or
    /// about to sleep, wakes). Both are sequentially consistent, so the thread's store of
    /// `lookingEveryDelay = false` followed by its load of `asked` cannot miss a wake-up's store of
    /// `asked` followed by its load of `lookingEveryDelay`.
    private final class Signals: Sendable {
        /// A run is wanted.
        let asked = Atomic<Bool>(false)
        /// The thread looks for `asked` every `delay` (so a wake-up need not write).
        let lookingEveryDelay = Atomic<Bool>(false)
        /// Wake-ups that wrote to the event counter (for tests and diagnostics).
        let writes = Atomic<Int>(0)
    }

    /// Added to the counter by `stop()`; wake-ups add 1 each and never come near it.
    private static let stopAmount: UInt64 = 1 << 40

    init(delay: Duration, stayAwake: Duration, work: @escaping @Sendable (_ wokenAgain: FileDescriptor) -> Void) throws(Errno) {
        let wakeUps = try FileDescriptor.eventCounter()
        let signals = signals
        let lookMilliseconds = Int32(max(1, (delay / .milliseconds(1)).rounded(.up)))
        let awakeLooks = Int((stayAwake / delay).rounded(.up))
        do {
            thread = try BackgroundThread(name: "pagestate-spares", policy: .batch) {
                var quietLooks = awakeLooks  // asleep until the first wake-up
                while true {
                    let looking = quietLooks < awakeLooks
                    signals.lookingEveryDelay.store(looking, ordering: .sequentiallyConsistent)
                    let asked = signals.asked.exchange(false, ordering: .sequentiallyConsistent)
                    // The counter is waited on unless a run is wanted already, and emptied whenever
                    // it is not, so that `work`'s waits end only at later wake-ups.
                    do {
                        if try wakeUps.waitReadable(timeoutMilliseconds: asked ? 0 : looking ? lookMilliseconds : -1) {
                            guard try wakeUps.takeEventCount() < Self.stopAmount else { return }
                        }
                    } catch {
                        return  // not expected of a valid event counter; spawns then fork on demand
                    }
                    guard asked || signals.asked.exchange(false, ordering: .sequentiallyConsistent) else {
                        if looking { quietLooks += 1 }
                        continue
                    }
                    signals.lookingEveryDelay.store(false, ordering: .sequentiallyConsistent)  // work's waits end at a wake-up
                    sleepCallingThread(for: delay)  // the spawn that woke the thread is over by then
                    work(wakeUps)
                    quietLooks = 0
                }
            }
        } catch {
            try? wakeUps.close()
            throw error
        }
        self.wakeUps = wakeUps
    }

    /// The thread's kernel id, once it has started running.
    var kernelThreadID: Int32? { thread.kernelThreadID }

    /// Wake-ups so far that had to write to the event counter (the thread was not looking).
    var wakeUpWrites: Int { signals.writes.load(ordering: .relaxed) }

    /// Asks for one more run of `work`; does not wait. A flag set while the thread is looking every
    /// `delay`; otherwise also one `write` to the event counter.
    func wake() {
        signals.asked.store(true, ordering: .sequentiallyConsistent)
        guard !signals.lookingEveryDelay.load(ordering: .sequentiallyConsistent) else { return }
        signals.writes.add(1, ordering: .relaxed)
        try? wakeUps.addToEventCounter()
    }

    /// Ends the thread (after its current run, if one is under way) and waits for it. Not from `work`.
    func stop() {
        try? wakeUps.addToEventCounter(Self.stopAmount)
        thread.join()
        try? wakeUps.close()
    }
}
