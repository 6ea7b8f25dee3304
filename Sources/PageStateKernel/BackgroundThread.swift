import CPageState
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A thread of its own (not one of Dispatch's), running one closure, under a scheduling policy chosen
/// at creation. Whoever creates it joins it once the closure has been told to return.
public final class BackgroundThread: Sendable {
    /// How the kernel schedules the thread.
    public enum Policy: Sendable {
        /// `SCHED_OTHER`, like every other thread.
        case normal
        /// `SCHED_BATCH`: a fair share of the processor like `normal`, but waking it never preempts
        /// the running thread (it waits for the next scheduling point), so a thread that wakes it
        /// keeps its processor.
        case batch
    }

    private let handle: pthread_t
    private let started = Started()

    /// The thread's kernel id (as in `/proc/self/task`), once it has started running.
    public var kernelThreadID: Int32? {
        let id = started.kernelThreadID.load(ordering: .acquiring)
        return id == 0 ? nil : id
    }

    /// Starts a thread named `name` (the first 15 bytes are kept) that runs `body`.
    ///
    /// The corresponding C functions are `pthread_create` and, in the thread before `body`,
    /// `pthread_setschedparam` (glibc's thread attributes take only `SCHED_OTHER`, `SCHED_FIFO` and
    /// `SCHED_RR`) and `prctl(PR_SET_NAME, name)`.
    public init(name: String, policy: Policy, body: @escaping @Sendable () -> Void) throws(Errno) {
        let started = started
        let context = Unmanaged.passRetained(Body {
            if policy == .batch {
                // Open to every thread (no privilege, no limit), so it does not fail in practice.
                var parameters = sched_param(sched_priority: 0)
                _ = pthread_setschedparam(pthread_self(), Int32(PS_SCHED_BATCH), &parameters)
            }
            started.kernelThreadID.store(ps_gettid(), ordering: .releasing)
            _ = ps_set_thread_name(name)
            body()
        }).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw Errno(rawValue: result)
        }
        handle = thread
    }

    /// Waits for the thread's closure to return. Call once, and not from the thread itself.
    ///
    /// The corresponding C function is `pthread_join`.
    public func join() {
        _ = pthread_join(handle, nil)
    }

    private final class Started: Sendable {
        let kernelThreadID = Atomic<Int32>(0)
    }

    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
}
