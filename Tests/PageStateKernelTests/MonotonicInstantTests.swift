import PageStateKernel
import Testing

@Suite struct MonotonicInstantTests {
    @Test("a duration in nanoseconds: whole ones kept, sub-nanoseconds dropped, negative ones 0, huge ones saturated")
    func durationsInNanoseconds() {
        #expect(MonotonicInstant.nanoseconds(in: .milliseconds(1500)) == 1_500_000_000)
        #expect(MonotonicInstant.nanoseconds(in: .nanoseconds(7)) == 7)
        #expect(MonotonicInstant.nanoseconds(in: .nanoseconds(7) + .init(secondsComponent: 0, attosecondsComponent: 999_999_999)) == 7)
        #expect(MonotonicInstant.nanoseconds(in: .zero) == 0)
        #expect(MonotonicInstant.nanoseconds(in: .milliseconds(-1500)) == 0)
        #expect(MonotonicInstant.nanoseconds(in: .milliseconds(-500)) == 0)
        #expect(MonotonicInstant.nanoseconds(in: .nanoseconds(-1)) == 0)
        #expect(MonotonicInstant.nanoseconds(in: .seconds(Int64.max) * 4) == .max)
        #expect(MonotonicInstant.nanoseconds(in: .seconds(Int64.max)) == .max)
        #expect(MonotonicInstant.nanoseconds(in: .seconds(18_446_744_073)) == 18_446_744_073_000_000_000)
        #expect(MonotonicInstant.nanoseconds(in: .seconds(18_446_744_073) + .milliseconds(800)) == .max)
    }

    @Test("readings advance with the boot-time clock and never go back; an earlier-later difference is 0")
    func readingsAdvance() {
        let first = MonotonicInstant.now
        sleepCallingThread(for: .milliseconds(2))
        let second = MonotonicInstant.now
        #expect(second > first)
        #expect(second.nanoseconds(since: first) >= 2_000_000)
        #expect(second.nanoseconds(since: first) < 10_000_000_000, "a 2 ms sleep is not 10 s")
        #expect(first.nanoseconds(since: second) == 0)
    }
}
