import PageStateKernel
import SystemPackage

/// A thread that runs `work` a moment after each wake-up: the launcher's requests for replacement
/// spares, kept off the spawning thread. Waking it is one `write` to an event counter, and the thread
/// runs under `SCHED_BATCH`, so the wake-up never takes the waker's processor (a Dispatch timer woke
/// Dispatch's manager thread, which did; performance.md, session 18). Wake-ups that arrive while it
/// sleeps or works are merged into one more run. `work` is given a descriptor that turns readable
/// when the thread is woken again or stopped: work that waits should wait on it as well and return.
final class ReplenishingThread: Sendable {
    private let wakeUps: FileDescriptor
    private let thread: BackgroundThread

    /// Added to the counter by `stop()`; wake-ups add 1 each and never come near it.
    private static let stopAmount: UInt64 = 1 << 40

    init(delay: Duration, work: @escaping @Sendable (_ wokenAgain: FileDescriptor) -> Void) throws(Errno) {
        let wakeUps = try FileDescriptor.eventCounter()
        do {
            thread = try BackgroundThread(name: "pagestate-spares", policy: .batch) {
                while let count = try? wakeUps.takeEventCount(), count < Self.stopAmount {
                    sleepCallingThread(for: delay)  // the spawn that woke the thread is over by then
                    work(wakeUps)
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

    /// Asks for one more run of `work`; does not wait.
    func wake() {
        try? wakeUps.addToEventCounter()
    }

    /// Ends the thread (after its current run, if one is under way) and waits for it. Not from `work`.
    func stop() {
        try? wakeUps.addToEventCounter(Self.stopAmount)
        thread.join()
        try? wakeUps.close()
    }
}
