import Synchronization
import SystemPackage

/// A `ReplenishingThread` created at its first wake-up (on the waking thread) and ended for good by
/// `close()`: an owner that never wakes it never starts a thread.
final class OnDemandReplenishingThread: Sendable {
    private let name: String
    private let delay: Duration
    private let stayAwake: Duration
    private let phase = Mutex(Phase.notStarted)

    private enum Phase {
        case notStarted
        case running(ReplenishingThread)
        case closed
    }

    init(name: String, delay: Duration, stayAwake: Duration) {
        self.name = name
        self.delay = delay
        self.stayAwake = stayAwake
    }

    /// Asks for one more run (`ReplenishingThread.wake()`), first creating the thread to run `work`
    /// if it is not running (`work` is ignored otherwise). False when the thread could not be created
    /// (the next wake-up tries again) or `close()` was called; the wake-up then does nothing.
    func wake(work: @escaping @Sendable (_ wokenAgain: FileDescriptor) -> Void) -> Bool {
        // Woken inside the lock: once `close()` has returned the thread, nothing wakes it any more.
        phase.withLock { phase in
            switch phase {
            case .running(let thread):
                thread.wake()
                return true
            case .notStarted:
                guard let thread = try? ReplenishingThread(name: name, delay: delay, stayAwake: stayAwake, work: work) else { return false }
                phase = .running(thread)
                thread.wake()
                return true
            case .closed:
                return false
            }
        }
    }

    /// Ends the wake-ups for good and returns the thread, if it was started, for the caller to
    /// `stop()` (which waits for a run under way: stop first whatever that run may be waiting for).
    func close() -> ReplenishingThread? {
        phase.withLock { phase in
            defer { phase = .closed }
            if case .running(let thread) = phase { return thread }
            return nil
        }
    }

    /// The thread, while it runs (for tests).
    var running: ReplenishingThread? {
        phase.withLock { if case .running(let thread) = $0 { thread } else { nil } }
    }
}
