@testable import PageStateSandbox
import PageState
import PropertyChecking
import Synchronization
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One step of a random history of executions across several guests.
enum SandboxOperation: CustomStringConvertible, Sendable {
    case execute(guest: Int, entryPoint: String, input: [UInt8], kind: ExecutionKind)
    /// The execution layer writes into a guest's heap between executions.
    case hostWrite(guest: Int, offset: Int, fill: UInt8, count: Int)
    /// Sandbox only: the worker is evicted, or killed behind the pool's back.
    case evict(guest: Int)
    case killWorker(guest: Int)
    /// Sandbox only: one of the pool's ready workers (spawned ahead for new guests) is killed while it waits.
    case killReadyWorker(index: Int)

    static let guests = 3

    static let generator = zip(Gen.int(in: 0...16), Gen.int(in: 0...(guests - 1)), Gen.int(in: 0...9), Gen.int(in: 0...255))
        .map { kind, guest, key, value -> SandboxOperation in
            switch kind {
            case 0, 1: .execute(guest: guest, entryPoint: "counter.increment", input: [], kind: .update)
            case 2: .execute(guest: guest, entryPoint: "counter.get", input: [], kind: .query)
            case 3, 4: .execute(guest: guest, entryPoint: "kv.put", input: putInput("k\(key)", String(repeating: "v", count: value % 40)), kind: .update)
            case 5: .execute(guest: guest, entryPoint: "kv.get", input: Array("k\(key)".utf8), kind: .query)
            case 6: .execute(guest: guest, entryPoint: "log.append", input: [UInt8](repeating: UInt8(value), count: value * 3), kind: .update)
            case 7: .execute(guest: guest, entryPoint: "log.get", input: DemoBytes.u64(UInt64(key)), kind: .query)
            case 8: .execute(guest: guest, entryPoint: "pages.write",
                             input: DemoBytes.u32(UInt32(1 + value % 24)) + DemoBytes.u64(UInt64(key * 1000 + value)) + DemoBytes.u64(UInt64(300 + key)),
                             kind: .update)
            case 9: .execute(guest: guest, entryPoint: key % 2 == 0 ? "fail" : "host.echo", input: [UInt8(value)], kind: .update)
            case 10: .execute(guest: guest, entryPoint: "pages.write",  // more than the allowance: fails deterministically
                              input: DemoBytes.u32(1) + DemoBytes.u64(1) + DemoBytes.u64(5000), kind: .update)
            case 11: .execute(guest: guest, entryPoint: "system.data", input: [], kind: .query)
            case 12: .hostWrite(guest: guest, offset: key * 4001 + value, fill: UInt8(value), count: 1 + value * 20)
            case 13: .evict(guest: guest)
            case 14: .killWorker(guest: guest)
            case 15: .killReadyWorker(index: key)
            default: .execute(guest: guest, entryPoint: "kv.put", input: putInput("k\(key)", "x"), kind: .query)
            }
        }

    var description: String {
        switch self {
        case .execute(let guest, let entryPoint, let input, let kind): "\(kind) \(entryPoint)(\(input.count) bytes) on guest \(guest)"
        case .hostWrite(let guest, let offset, let fill, let count): "host writes \(count)×\(fill) at \(offset) of guest \(guest)"
        case .evict(let guest): "evict guest \(guest)"
        case .killWorker(let guest): "kill the worker of guest \(guest)"
        case .killReadyWorker(let index): "kill ready worker \(index)"
        }
    }
}

enum DemoBytes {
    static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

/// Guest ids unique across cases, so one pool serves every case.
let nextGuestID = Atomic<UInt64>(1000)

@Suite("Sandboxed and in-process executions agree")
struct DifferentialPropertyTests {
    /// Every update after a guest's first gets a result file prepared in the background (sized by
    /// the previous result, so larger, smaller or still being prepared).
    static let pool = makePool(budget: MemoryBudget(pages: 1 << 40)) { $0.preparedResultMinimumPages = 1 }

    /// Random executions across guests, with host writes, evictions and worker kills injected: after
    /// every step the sandboxed and the in-process run have the same outputs (or errors) and the same
    /// memories, byte for byte.
    @Test(.shrinking)
    func sandboxMatchesInProcess() async throws {
        await checkProperty(count: 100, input: SandboxOperation.generator.array(of: 0...30)) { operations in
            do { try Self.run(operations) } catch { Issue.record("\(error)") }
        }
        #expect(Self.pool.statistics.preparedResultFiles > 0)
    }

    static func run(_ operations: [SandboxOperation]) throws {
        let local = InProcessExecutor(runtime: demoRuntime, budget: MemoryBudget(pages: 1 << 40), hostCall: { _, bytes in bytes.reversed() })
        var sandboxed: [Guest] = [], inProcess: [Guest] = []
        for _ in 0..<SandboxOperation.guests {
            let id = nextGuestID.add(1, ordering: .relaxed).newValue
            sandboxed.append(try Guest(id: id, heapCapacityInPages: 4096, stableCapacityInPages: 64))
            inProcess.append(try Guest(id: id, heapCapacityInPages: 4096, stableCapacityInPages: 64))
        }
        defer { for guest in sandboxed { pool.evict(guest) } }
        for (step, operation) in operations.enumerated() {
            switch operation {
            case .execute(let guest, let entryPoint, let input, let kind):
                var execution = request(entryPoint, input, kind: kind, guest: sandboxed[guest].id, allowance: 1024)
                execution.dirtyPageLimit = 64
                let expected = Result { () throws(ExecutionError) in try local.execute(inProcess[guest], execution).output }
                let actual = Result { () throws(ExecutionError) in try pool.execute(sandboxed[guest], execution).output }
                #expect(actual == expected, "step \(step): \(operation)")
            case .hostWrite(let guest, let offset, let fill, let count):
                for target in [sandboxed[guest], inProcess[guest]] {
                    try target.modify { heap, _ in
                        guard heap.sizeInPages > 0 else { return }
                        let size = Int(heap.sizeInPages) * Page.size
                        let start = offset % size
                        try heap.write([UInt8](repeating: fill, count: min(count, size - start)), at: UInt64(start))
                    }
                }
            case .evict(let guest):
                pool.evict(sandboxed[guest])
            case .killWorker(let guest):
                if let pid = pool.workerProcessID(of: sandboxed[guest]), let process = try? FileDescriptor.processDescriptor(pid) {
                    kill(pid.rawValue, SIGKILL)
                    _ = try process.waitReadable(timeoutMilliseconds: 5000)  // dead before the next step
                    try process.close()
                }
            case .killReadyWorker(let index):
                let ready = pool.readyWorkerProcessIDs
                if !ready.isEmpty, let process = try? FileDescriptor.processDescriptor(ready[index % ready.count]) {
                    try process.sendSignal(SIGKILL)
                    _ = try process.waitReadable(timeoutMilliseconds: 5000)
                    try process.close()
                }
            }
            for guest in 0..<SandboxOperation.guests {
                #expect(sandboxed[guest].heap.sizeInPages == inProcess[guest].heap.sizeInPages, "step \(step): heap size of guest \(guest)")
                #expect(firstDifference(sandboxed[guest].heap, inProcess[guest].heap) == nil, "step \(step): heap of guest \(guest)")
                #expect(firstDifference(sandboxed[guest].stable, inProcess[guest].stable) == nil, "step \(step): stable of guest \(guest)")
            }
        }
    }
}
