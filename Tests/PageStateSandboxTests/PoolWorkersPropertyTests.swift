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
    /// A measurement taken now, or (`stale`) one taken before the guest's latest check-in.
    case measure(guest: UInt64, bytes: UInt64, stale: Bool)

    static let generator = zip(Gen.int(in: 0...9), Gen.int(in: 0...5), Gen.int(in: 0...1000)).map { kind, guest, bytes -> Self in
        let guest = UInt64(guest)
        return switch kind {
        case 0, 1: .add(guest: guest, idle: kind == 1)
        case 2, 3: .checkOut(guest: guest)
        case 4, 5, 6: .checkIn(guest: guest)
        case 7: .remove(guest: guest)
        case 8: .measure(guest: guest, bytes: UInt64(bytes), stale: false)
        default: .measure(guest: guest, bytes: UInt64(bytes), stale: true)
        }
    }

    var description: String {
        switch self {
        case .add(let guest, let idle): "add \(guest)\(idle ? " idle" : "")"
        case .checkOut(let guest): "check out \(guest)"
        case .checkIn(let guest): "check in \(guest)"
        case .remove(let guest): "remove \(guest)"
        case .measure(let guest, let bytes, let stale): "measure \(guest): \(bytes) bytes\(stale ? " (stale)" : "")"
        }
    }
}

@Suite("Sandbox pool: bookkeeping without scans")
struct PoolWorkersPropertyTests {
    final class FakeWorker {}

    /// The plain model: per guest, busy or not, when last used, last measurement, and whether it ran
    /// since.
    struct ModelWorker {
        let worker: FakeWorker
        var busy = true
        var lastUsed: Int
        var residentBytes: UInt64 = 0
        var unmeasured = true
        var checkIns: UInt64 = 0
    }

    /// Any history of additions (busy or idle), check-outs, check-ins, removals and measurements
    /// (some taken before a later check-in, which must be ignored): the idle order is by last use, the
    /// oldest idle worker is the model's, the unmeasured workers and the resident sum agree.
    @Test(.shrinking)
    func bookkeepingMatchesAPlainModel() async {
        await checkProperty(count: 200, input: PoolWorkersOperation.generator.array(of: 0...60)) { operations in
            var workers = PoolWorkers<FakeWorker>()
            var model: [UInt64: ModelWorker] = [:]
            let origin = ContinuousClock.now
            for (tick, operation) in operations.enumerated() {
                let now = origin + .seconds(tick)
                switch operation {
                case .add(let guest, let idle):
                    guard model[guest] == nil else { continue }
                    let worker = FakeWorker()
                    workers.add(worker, for: guest, at: now, idle: idle)
                    model[guest] = ModelWorker(worker: worker, busy: !idle, lastUsed: tick)
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
                    model[guest]!.checkIns += 1
                case .remove(let guest):
                    #expect(workers.remove(guest) === model.removeValue(forKey: guest)?.worker)
                case .measure(let guest, let bytes, let stale):
                    guard let entry = model[guest], !stale || entry.checkIns > 0 else { continue }
                    workers.record(residentBytes: bytes, of: entry.worker, guestID: guest,
                                   checkIns: stale ? entry.checkIns - 1 : entry.checkIns)
                    if !entry.busy, !stale {
                        model[guest]!.residentBytes = bytes
                        model[guest]!.unmeasured = false
                    }
                }
                let idle = model.filter { !$0.value.busy }.sorted { $0.value.lastUsed < $1.value.lastUsed }
                #expect(workers.idle.fromOldest.map(\.guestID) == idle.map(\.key), "after \(operation)")
                #expect(workers.idle.oldest?.guestID == idle.first?.key)
                #expect(workers.idle.count == idle.count)
                #expect(workers.count == model.count)
                #expect(workers.residentBytes == model.values.reduce(0) { $0 + $1.residentBytes })
                #expect(Set(workers.idleUnmeasured.map(\.guestID)) == Set(idle.filter(\.value.unmeasured).map(\.key)))
                #expect(workers.unmeasured == Set(model.filter(\.value.unmeasured).keys))
                #expect(Set(workers.slots.filter(\.value.ranSinceMeasured).keys) == workers.unmeasured)
                // Idle longer than 3 ticks, by the model's clock.
                let expired = idle.first.flatMap { tick - $0.value.lastUsed > 3 ? $0.key : nil }
                #expect(workers.oldestIdle(idleFor: .seconds(3), at: now) == expired)
            }
            let all = workers.removeAll()
            #expect(all.count == model.count)
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
