import Synchronization
import SystemPackage

/// A `ReplenishingThread` created at its first wake-up (on the waking thread) and handed back by
/// `close()` for its owner to stop: an owner that never wakes it never starts a thread. Stored
/// inline in its owner (not copyable), so that a wake-up of the running thread reads the owner's
/// own memory and then the thread's `Signals`, with no lock: on a paced spawn, whose memory is cold,
/// each dependent read costs ~0.5 µs here (performance.md, session 41). Hence a wake-up between
/// `close()` and the thread's `stop()` may still start one more run of `work`, which must check
/// its owner's own closed state (both owners' do); after `stop()` wake-ups run nothing.
///
/// Invariant: `signals` is set (once, for good, retained until this value ends) exactly when a
/// thread was created; `phase` says whether the thread runs, was never started, or was closed.
struct OnDemandReplenishingThread: ~Copyable, Sendable {
    /// The running thread's wake-up side, once it was started (the fast path of `wake`). An `Atomic`,
    /// whose load is inlined: `AtomicLazyReference.load()` is an unspecialized call into the
    /// Synchronization library, which took ~8 µs of a paced spawn (cold code; session 41).
    private let signals = Atomic<Unmanaged<ReplenishingThread.Signals>?>(nil)
    private let phase = Mutex(Phase.notStarted)
    private let name: String
    private let delay: Duration
    private let stayAwake: Duration

    // Not private: a private type in this non-copyable struct's stored Mutex made Swift 6.3.1 emit
    // a broken module.
    enum Phase {
        case notStarted
        case running(ReplenishingThread)
        case closed
    }

    init(name: String, delay: Duration, stayAwake: Duration) {
        self.name = name
        self.delay = delay
        self.stayAwake = stayAwake
    }

    deinit { signals.load(ordering: .relaxed)?.release() }  // nothing else holds `self` now

    /// Asks for one more run (`ReplenishingThread.wake()`), first creating the thread to run `work`
    /// if it was never started (`work` is ignored otherwise). True: no need to try again (the thread
    /// was started, even if it is closed since, when the wake-up may run nothing); false when the
    /// thread could not be created (the next wake-up tries again) or `close()` came before any was.
    func wake(work: @autoclosure () -> @Sendable (_ wokenAgain: FileDescriptor) -> Void) -> Bool {
        if let signals = signals.load(ordering: .acquiring) {
            // This value holds a reference until its deinit, and `self` is borrowed: no retain needed.
            signals._withUnsafeGuaranteedRef { $0.wake() }
            return true
        }
        return phase.withLock { phase in
            switch phase {
            case .running(let thread):
                thread.wake()
                return true
            case .notStarted:
                guard let thread = try? ReplenishingThread(name: name, delay: delay, stayAwake: stayAwake, work: work()) else { return false }
                phase = .running(thread)
                signals.store(Unmanaged.passRetained(thread.signals), ordering: .releasing)  // the only store
                thread.wake()
                return true
            case .closed:
                return false
            }
        }
    }

    /// Returns the thread, if it was started, for the caller to `stop()` (which waits for a run
    /// under way: stop first whatever that run may be waiting for); no thread is started afterwards.
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
