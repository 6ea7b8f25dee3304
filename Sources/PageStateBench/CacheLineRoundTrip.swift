import CPageState
import PageStateKernel
import Synchronization

/// How far apart two processors are, as the time a cache line takes to go from one to the other and
/// back: the calling thread and a helper thread pinned to `other` take turns incrementing one
/// counter. A sandboxed execution moves its messages between two processors this way (each
/// direction: the sender takes the mailbox's lines from the receiver, the receiver takes them back),
/// an in-process one not at all. On these virtual machines the hypervisor moves the two vCPUs
/// between physical cores: a round trip took ~65-90 ns in some stretches and ~330-380 ns in others,
/// and a sandboxed kv.get 0.4-0.7 µs longer in the far ones (performance.md, sessions 29-30).
enum CacheLineRoundTrip {
    /// The median over `chunks` chunks of `tripsPerChunk` round trips (a preemption spoils one chunk,
    /// not the figure) of the nanoseconds per round trip between the calling thread's processor and
    /// `other`. Nil when the helper could not run on `other`, or the whole took over a second.
    static func measure(to other: UInt32, chunks: Int = 21, tripsPerChunk: Int = 1000) -> Double? {
        let line = SharedLine()
        defer { line.deallocate() }
        let trips = UInt64(chunks * tripsPerChunk)
        let deadline = ContinuousClock.now + .seconds(1)
        let helper: BackgroundThread
        do {
            helper = try BackgroundThread(name: "pagestate-line", policy: .normal) {
                // On the calling thread's processor the two would take turns through the scheduler.
                guard (try? setAllowedProcessors([other])) != nil, currentProcessor() == other else {
                    line.store(SharedLine.gaveUp)
                    return
                }
                line.store(1)  // ready
                for trip in 0..<trips {
                    guard line.await(2 * trip + 2, until: deadline) else { return }
                    line.store(2 * trip + 3)
                }
            }
        } catch {
            return nil
        }
        defer { helper.join() }
        guard line.await(1, until: deadline) else { return nil }
        var perChunk: [Double] = []
        for chunk in 0..<UInt64(chunks) {
            let start = ContinuousClock.now
            for trip in chunk * UInt64(tripsPerChunk)..<(chunk + 1) * UInt64(tripsPerChunk) {
                line.store(2 * trip + 2)
                guard line.await(2 * trip + 3, until: deadline) else {
                    line.store(SharedLine.gaveUp)
                    return nil
                }
            }
            perChunk.append(TrackingSuite.nanoseconds(since: start) / Double(tripsPerChunk))
        }
        return perChunk.sorted()[chunks / 2]
    }

    /// One counter alone on a 128-byte-aligned pair of cache lines, shared by the two threads.
    private struct SharedLine: @unchecked Sendable {
        /// Stored by either side that stops early; the other then stops too.
        static let gaveUp = UInt64.max
        let counter: UnsafeMutablePointer<Atomic<UInt64>>

        init() {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
            counter = raw.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
            counter.initialize(to: Atomic(0))
        }

        func deallocate() { UnsafeMutableRawPointer(counter).deallocate() }

        func store(_ value: UInt64) { counter.pointee.store(value, ordering: .releasing) }

        /// Spins until the counter holds `value` (true), or `gaveUp`, or `deadline` passes (false).
        func await(_ value: UInt64, until deadline: ContinuousClock.Instant) -> Bool {
            var spins = 0
            while true {
                let seen = counter.pointee.load(ordering: .acquiring)
                if seen == value { return true }
                if seen == Self.gaveUp { return false }
                spins += 1
                if spins % 4096 == 0, ContinuousClock.now > deadline { return false }
                ps_cpu_relax()
            }
        }
    }
}
