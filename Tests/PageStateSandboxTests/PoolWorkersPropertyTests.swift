import PageStateKernel
@testable import PageStateSandbox
import PropertyChecking
import Testing

/// One step of a random history of the pool's bookkeeping, over a few guests.
enum PoolWorkersOperation: CustomStringConvertible, Sendable {
    /// A new worker, busy (an execution's) or idle (`warmUp`'s).
    case add(guest: UInt64, idle: Bool)
    case checkOut(guest: UInt64)
    case checkIn(guest: UInt64)
    case remove(guest: UInt64)
    /// Maintenance asks which workers to measure (`takeIdleUnmeasured`)...
    case askWhatToMeasure
    /// ... and, perhaps after other steps, records what it measured for each (a value of its own per
    /// entry, from `bytes`), in the order asked for, or the reverse if `bytes` is odd.
    case recordMeasurements(bytes: UInt64)

    static let generator = zip(Gen.int(in: 0...9), Gen.int(in: 0...5), Gen.int(in: 0...1000)).map { kind, guest, bytes -> Self in
        let guest = UInt64(guest)
        return switch kind {
        case 0, 1: .add(guest: guest, idle: kind == 1)
        case 2, 3: .checkOut(guest: guest)
        case 4, 5, 6: .checkIn(guest: guest)
        case 7: .remove(guest: guest)
        case 8: .askWhatToMeasure
        default: .recordMeasurements(bytes: UInt64(bytes))
        }
    }

    var description: String {
        switch self {
        case .add(let guest, let idle): "add \(guest)\(idle ? " idle" : "")"
        case .checkOut(let guest): "check out \(guest)"
        case .checkIn(let guest): "check in \(guest)"
        case .remove(let guest): "remove \(guest)"
        case .askWhatToMeasure: "ask what to measure"
        case .recordMeasurements(let bytes): "record measurements: \(bytes) bytes + guest"
        }
    }
}

@Suite("Sandbox pool: bookkeeping without scans")
struct PoolWorkersPropertyTests {
    final class FakeWorker {}

    /// The plain model: per guest, busy or not, when last used (added or checked in), last
    /// measurement, whether it ran since, and whether it was touched since maintenance last asked.
    struct ModelWorker {
        let worker: FakeWorker
        var busy = true
        var lastUsed: Int
        var residentBytes: UInt64 = 0
        var unmeasured = true
        var touchedSinceAsked = true
        /// Whether it was ever idle (added idle, or checked in).
        var wasIdle = false
    }

    /// Any history of additions (busy or idle), check-outs, check-ins, removals, and maintenance
    /// passes asking what to measure and recording it later (after other steps, which can make a
    /// measurement stale: it must be ignored): the idle order is by last use, the oldest idle worker
    /// is the model's, each ask returns the idle workers touched since the last, no idle worker that
    /// ran since its last measurement is forgotten, and the resident sum agrees.
    @Test(.shrinking)
    func bookkeepingMatchesAPlainModel() async {
        await checkProperty(count: 200, input: PoolWorkersOperation.generator.array(of: 0...60)) { operations in
            var workers = PoolWorkers<FakeWorker>()
            var model: [UInt64: ModelWorker] = [:]
            let origin = MonotonicInstant.now
            var asked: [(guestID: UInt64, worker: FakeWorker, touch: UInt64, lastUsed: Int)] = []  // not recorded yet
            var spawnLatencies: [UInt64] = []  // every one added, each unique
            for (tick, operation) in operations.enumerated() {
                let now = MonotonicInstant(nanoseconds: origin.nanoseconds + UInt64(tick) * 1_000_000_000)
                switch operation {
                case .add(let guest, let idle):
                    guard model[guest] == nil else { continue }
                    let worker = FakeWorker()
                    workers.add(worker, for: guest, at: now, idle: idle, spawnNanoseconds: UInt64(tick) + 1)
                    spawnLatencies.append(UInt64(tick) + 1)
                    model[guest] = ModelWorker(worker: worker, busy: !idle, lastUsed: tick, wasIdle: idle)
                case .checkOut(let guest):
                    #expect(workers.checkOut(guest) === model[guest]?.worker)
                    model[guest]?.busy = true
                case .checkIn(let guest):
                    guard let slot = workers[guest] else {
                        #expect(model[guest] == nil)
                        continue
                    }
                    workers.checkIn(slot, at: now)
                    #expect(model[guest] != nil)
                    model[guest]!.busy = false
                    model[guest]!.lastUsed = tick
                    model[guest]!.unmeasured = true
                    model[guest]!.touchedSinceAsked = true
                    model[guest]!.wasIdle = true
                case .remove(let guest):
                    #expect(workers.remove(guest) === model.removeValue(forKey: guest)?.worker)
                case .askWhatToMeasure:
                    let returned = workers.takeIdleUnmeasured()
                    let expected = model.filter { !$0.value.busy && $0.value.touchedSinceAsked }
                    #expect(returned.map(\.guestID) == expected.sorted { $0.value.lastUsed > $1.value.lastUsed }.map(\.key), "newest first")
                    #expect(returned.allSatisfy { $0.worker === model[$0.guestID]?.worker })
                    asked += returned.map { ($0.guestID, $0.worker, $0.touch, model[$0.guestID]?.lastUsed ?? -1) }
                    for guest in model.keys { model[guest]!.touchedSinceAsked = false }
                case .recordMeasurements(let bytes):
                    for entry in bytes.isMultiple(of: 2) ? asked : asked.reversed() {
                        let measured = bytes + entry.touch * 10_000 + entry.guestID  // no two entries record alike
                        workers.record(residentBytes: measured, of: entry.worker, guestID: entry.guestID, touch: entry.touch)
                        // Taken into account only if the guest still has that worker, idle, untouched since.
                        guard let current = model[entry.guestID], current.worker === entry.worker, !current.busy,
                              current.lastUsed == entry.lastUsed else { continue }
                        model[entry.guestID]!.residentBytes = measured
                        model[entry.guestID]!.unmeasured = false
                    }
                    asked = []
                }
                let idle = model.filter { !$0.value.busy }.sorted { $0.value.lastUsed < $1.value.lastUsed }
                #expect(workers.idle.fromOldest.map(\.guestID) == idle.map(\.key), "after \(operation)")
                #expect(workers.idle.oldest?.guestID == idle.first?.key)
                #expect(workers.idle.count == idle.count)
                #expect(workers.count == model.count)
                #expect(workers.residentBytes == model.values.reduce(0) { $0 + $1.residentBytes })
                // No idle worker that ran since its last measurement is forgotten: the next ask returns it,
                // or an ask returned it since it last ran and its measurement is yet to be recorded.
                for (guest, entry) in idle where entry.unmeasured && !entry.touchedSinceAsked {
                    #expect(asked.contains { $0.guestID == guest && $0.worker === entry.worker && $0.lastUsed == entry.lastUsed },
                            "guest \(guest) forgotten after \(operation)")
                }
                // Every spawn latency is in its slot or among the samples, once; a flush empties idle slots.
                let waiting = workers.slots.values.compactMap(\.pendingSpawnNanoseconds)
                #expect((workers.spawnLatencies.samples + waiting).sorted() == spawnLatencies.sorted(), "after \(operation)")
                // A worker busy since it was added still holds its latency (nothing moved it early).
                for (guest, entry) in model where !entry.wasIdle {
                    #expect(workers[guest]?.pendingSpawnNanoseconds != nil, "guest \(guest)'s latency moved early")
                }
                if tick.isMultiple(of: 4) {
                    workers.flushSpawnLatencies()
                    #expect(workers.idle.fromOldest.allSatisfy { $0.pendingSpawnNanoseconds == nil })
                }
                // Idle longer than 3 ticks, by the model's clock.
                let expired = idle.first.flatMap { tick - $0.value.lastUsed > 3 ? $0.key : nil }
                #expect(workers.oldestIdle(idleForNanoseconds: 3_000_000_000, at: now) == expired)
            }
            let all = workers.removeAll()
            #expect(all.count == model.count)
            #expect(workers.spawnLatencies.samples.sorted() == spawnLatencies.sorted(), "kept, with those that waited")
            #expect(workers.count == 0 && workers.idle.count == 0 && workers.residentBytes == 0)
        }
    }

    /// A listed thing for `RecencyList`.
    final class Node: RecencyListNode {
        let key: Int
        unowned(unsafe) var older: Node?  // `nodes` keeps every node alive
        unowned(unsafe) var newer: Node?
        init(key: Int) { self.key = key }
    }

    @Test("the index is made for 4x the expected workers: filling the pool never rehashes it; the plan is capped")
    func indexReservedAhead() {
        var workers = PoolWorkers<FakeWorker>(expectedWorkers: 1_000)
        let capacity = workers.slots.capacity
        #expect(capacity >= 4_000)
        for guest in 0..<1_000 as Range<UInt64> {
            workers.add(FakeWorker(), for: guest, at: MonotonicInstant.now, spawnNanoseconds: 0)
        }
        #expect(workers.slots.capacity == capacity, "no rehash while the pool filled")
        #expect(PoolWorkers<FakeWorker>(expectedWorkers: .max).slots.capacity < 1 << 20, "capped at 65,536 planned")
        #expect(PoolWorkers<FakeWorker>(expectedWorkers: -1).slots.capacity == 0)
    }

    /// Any sequence of touches and removals: the order is that of an array that moves a touched key
    /// to its end, and exactly the listed nodes say they are.
    @Test(.shrinking)
    func recencyListMatchesAnArray() async {
        await checkProperty(count: 200, input: zip(Gen.bool, Gen.int(in: 0...7)).array(of: 0...50)) { steps in
            let nodes = (0...7).map(Node.init)
            var list = RecencyList<Node>()
            var model: [Int] = []
            for (touch, key) in steps {
                model.removeAll { $0 == key }
                if touch {
                    list.touch(nodes[key])
                    model.append(key)
                } else {
                    list.remove(nodes[key])
                }
                #expect(list.fromOldest.map(\.key) == model, "after \(touch ? "touching" : "removing") \(key)")
                #expect(list.oldest?.key == model.first)
                #expect(list.count == model.count)
                #expect(nodes.filter(list.contains).map(\.key).sorted() == model.sorted())
            }
        }
    }
}

@Suite struct LatencySamplesTests {
    @Test("the ring keeps the latest 4,096 samples: percentiles over those, in microseconds")
    func keepsTheLatest() {
        var samples = LatencySamples()
        #expect(samples.percentiles() == (0, 0))
        for nanoseconds in 1...5_000 { samples.add(nanoseconds: UInt64(nanoseconds) * 1_000) }
        #expect(samples.samples.count == LatencySamples.capacity)
        #expect(samples.samples.min() == UInt64(5_000 - LatencySamples.capacity + 1) * 1_000)
        #expect(samples.samples.max() == 5_000_000)
        let (p50, p99) = samples.percentiles()
        #expect(p50 == Double(5_000 - LatencySamples.capacity + 1 + LatencySamples.capacity / 2))
        #expect(p99 == Double(5_000 - LatencySamples.capacity + 1 + LatencySamples.capacity * 99 / 100))
    }
}
