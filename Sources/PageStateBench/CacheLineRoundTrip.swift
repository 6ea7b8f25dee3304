import CPageState
import PageStateKernel
import Synchronization

/// How far apart two processors are, as the time a cache line takes to go from one to the other and
/// back: the calling thread and a helper thread pinned to `other` take turns incrementing one
/// counter. A sandboxed execution moves its messages between two processors this way (each
/// direction: the sender takes the mailbox's lines from the receiver, the receiver takes them back),
/// an in-process one not at all. On these virtual machines the hypervisor moves the two vCPUs
/// between physical cores: a round trip took ~70-90 ns in some stretches and ~330-380 ns in others,
/// and a sandboxed kv.get ~0.5 µs longer in the far ones (performance.md, session 29).
enum CacheLineRoundTrip {
    /// Nanoseconds per round trip between the calling thread's processor and `other`, over `trips`
    /// round trips; nil when the helper thread could not start or did not answer within a second.
    static func measure(to other: UInt32, trips: Int = 50_000) -> Double? {
        let line = SharedLine()
        defer { line.deallocate() }
        let helper: BackgroundThread
        do {
            helper = try BackgroundThread(name: "pagestate-line", policy: .normal) {
                try? setAllowedProcessors([other])
                for trip in 0..<UInt64(trips) {
                    guard line.await(2 * trip + 1) else { return }
                    line.store(2 * trip + 2)
                }
            }
        } catch {
            return nil
        }
        defer { helper.join() }
        let start = ContinuousClock.now
        for trip in 0..<UInt64(trips) {
            line.store(2 * trip + 1)
            guard line.await(2 * trip + 2) else {
                line.store(UInt64.max)  // the helper gives up too
                return nil
            }
        }
        let elapsed = ContinuousClock.now - start
        return (Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9) / Double(trips)
    }

    /// One counter alone on a 128-byte-aligned pair of cache lines, shared by the two threads.
    private struct SharedLine: @unchecked Sendable {
        let counter: UnsafeMutablePointer<Atomic<UInt64>>

        init() {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
            counter = raw.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
            counter.initialize(to: Atomic(0))
        }

        func deallocate() { UnsafeMutableRawPointer(counter).deallocate() }

        func store(_ value: UInt64) { counter.pointee.store(value, ordering: .releasing) }

        /// Spins until the counter holds `value` (true) or `UInt64.max`, or a second passes (false).
        func await(_ value: UInt64) -> Bool {
            var spins = 0
            let deadline = ContinuousClock.now + .seconds(1)
            while true {
                let seen = counter.pointee.load(ordering: .acquiring)
                if seen == value { return true }
                if seen == UInt64.max { return false }
                spins += 1
                if spins % 4096 == 0, ContinuousClock.now > deadline { return false }
                ps_cpu_relax()
            }
        }
    }
}
