import Foundation
import PageState
import PropertyChecking
import Testing

/// One step of a random state-manager history, run against a plain model.
enum StoreOperation: CustomStringConvertible, Sendable {
    case write(guest: GuestID, memory: String, address: Int, count: Int, fill: UInt8)
    case metadata(guest: GuestID, fill: UInt8)
    case removeGuest(GuestID)
    case commit
    case flush
    case checkpoint
    case merge
    case load(pick: Int, full: Bool)
    case collect(keepLast: Int)
    case reopen

    static let maxPages = 40

    static let generator = zip(Gen.int(in: 0...19), Gen.int(in: 0...2), Gen.int(in: 0...(maxPages * Page.size - 1)),
                               Gen.int(in: 0...20_000), Gen.int(in: 0...255))
        .map { kind, guest, address, count, fill -> StoreOperation in
            let guest = GuestID(guest)
            return switch kind {
            case 0...5: .write(guest: guest, memory: fill % 2 == 0 ? "heap" : "stable", address: address,
                               count: min(count, maxPages * Page.size - address), fill: UInt8(fill))
            case 6: .metadata(guest: guest, fill: UInt8(fill))
            case 7: .removeGuest(guest)
            case 8...10: .commit
            case 11: .flush
            case 12, 13: .checkpoint
            case 14: .merge
            case 15, 16: .load(pick: count, full: fill % 2 == 0)
            case 17, 18: .collect(keepLast: 1 + count % 3)
            default: .reopen
            }
        }

    var description: String {
        switch self {
        case .write(let g, let m, let a, let c, let f): "write(guest \(g) \(m), \(a), \(c), fill \(f))"
        case .metadata(let g, let f): "metadata(guest \(g), \(f))"
        case .removeGuest(let g): "remove(guest \(g))"
        case .commit: "commit"
        case .flush: "flush"
        case .checkpoint: "checkpoint"
        case .merge: "merge"
        case .load(let pick, let full): "load(pick \(pick), \(full ? "full" : "structure"))"
        case .collect(let keep): "collect(keep \(keep))"
        case .reopen: "reopen"
        }
    }
}

@Suite struct StateManagerPropertyTests {
    /// Random commit/flush/checkpoint/merge/load/GC/reopen histories: every loaded height equals the
    /// model of that height, every checkpoint's root hash equals the root hash of a state built with
    /// the same contents in one go, and GC never removes the checkpoint the live state maps.
    @Test(.shrinking)
    func historiesMatchTheModel() async throws {
        await checkProperty(count: 150, input: StoreOperation.generator.array(of: 0...40)) { operations in
            do { try Self.run(operations) } catch {
                print("state-manager history failed: \(error)")  // the property checker reports only the input
                Issue.record("\(error)")
            }
        }
    }

    static func run(_ operations: [StoreOperation]) throws {
        let directory = try TemporaryDirectory()
        var options = StateManager.Options()
        options.flushInBackground = Bool.random()
        var manager: StateManager? = try StateManager(directory: directory.path, options: options)
        var current = ReplicatedState()
        var model = StateModel()
        var lastHeight: Height = 0
        var latestCommitted: (height: Height, model: StateModel)?
        var checkpointed: [Height: StateModel] = [:]
        for operation in operations {
            if case .reopen = operation {
                manager!.waitForBackgroundWork()
                manager = nil  // releases the directory lock
                let reopened = try StateManager(directory: directory.path, options: options)
                manager = reopened
                let loaded = try reopened.load()
                let expected = checkpointed[loaded.height] ?? StateModel()
                expectEqual(loaded.state, expected, "reopen at \(loaded.height)")
                (current, model) = (loaded.state, expected)
                latestCommitted = loaded.height == 0 ? nil : (loaded.height, expected)
                continue
            }
            let store = manager!
            switch operation {
            case .write(let guest, let memory, let address, let count, let fill):
                try model.write(guest: guest, memory: memory, address: address, count: count, fill: fill, state: &current,
                                allocator: store.allocator)
            case .metadata(let guest, let fill):
                let bytes = [UInt8](repeating: fill, count: Int(fill % 5))
                current.guests[guest, default: GuestState()].metadata = bytes
                model[guest, default: GuestModel()].metadata = bytes
            case .removeGuest(let guest):
                current.guests[guest] = nil
                model[guest] = nil
            case .commit:
                lastHeight += 1
                try store.commit(height: lastHeight, state: current)
                latestCommitted = (lastHeight, model)
            case .flush:
                try store.flush()
            case .merge:
                try store.merge()
            case .checkpoint:
                guard let (height, committed) = latestCommitted, checkpointed[height] == nil else { break }
                let info = try store.checkpoint(height: height)
                checkpointed[height] = committed
                #expect(info.rootHash == (try committed.freshState(allocator: store.allocator).rootHash), "root hash at \(height)")
            case .load(let pick, let full):
                let heights = try store.checkpointHeights()
                guard !heights.isEmpty else { break }
                let height = heights[pick % heights.count]
                let loaded = try store.load(height: height, verification: full ? .full : .structure)
                let expected = try #require(checkpointed[height])
                expectEqual(loaded.state, expected, "load \(height)")
                (current, model) = (loaded.state, expected)
                latestCommitted = (height, expected)
            case .collect(let keepLast):
                let deleted = try store.collectGarbage(keepLast: keepLast)
                for height in deleted { checkpointed[height] = nil }
                let remaining = try store.checkpointHeights()
                #expect(Set(remaining) == Set(checkpointed.keys))
                // Never deletes a checkpoint the live state still maps.
                let mapped = current.guests.values.flatMap { $0.memories.values.flatMap(\.layers) }.compactMap { $0 as? OverlayLayer }
                for layer in mapped {
                    #expect(FileManager.default.fileExists(atPath: layer.path.string), "GC removed \(layer.path), which the live state maps")
                }
            case .reopen:
                break  // handled above, without holding the old manager
            }
            expectEqual(current, model, "after \(operation)")
        }
        manager!.waitForBackgroundWork()
        for (height, expected) in checkpointed {
            expectEqual(try manager!.load(height: height, verification: .full).state, expected, "final load \(height)")
        }
        #expect(try StateVerifier.verify(directory: directory.path).allSatisfy { $0.error == nil })
    }
}
