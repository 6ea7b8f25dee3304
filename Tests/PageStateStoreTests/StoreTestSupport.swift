import Foundation
import PageState
import SystemPackage
import Testing

/// A directory under /tmp removed when the value goes away.
final class TemporaryDirectory {
    let path: FilePath

    init() throws {
        path = FilePath(FileManager.default.temporaryDirectory.path).appending("pagestate-store-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(atPath: path.string, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path.string) }
}

/// The plain model of one guest: metadata and each memory as a byte array of whole pages.
struct GuestModel: Equatable {
    var metadata: [UInt8] = []
    var memories: [String: [UInt8]] = [:]
}

typealias StateModel = [GuestID: GuestModel]

extension StateModel {
    /// A state with the model's contents, each memory written in one go (a history unlike any
    /// sequence of commits, flushes and merges).
    func freshState(allocator: PageAllocator) throws -> ReplicatedState {
        var state = ReplicatedState()
        for (id, guest) in self {
            var memories: [String: PageMap] = [:]
            for (name, bytes) in guest.memories {
                var map = PageMap(allocator: allocator)
                map.grow(toPages: UInt64(bytes.count / Page.size))
                if !bytes.isEmpty { try map.write(bytes, at: 0) }
                memories[name] = map
            }
            state.guests[id] = GuestState(memories: memories, metadata: guest.metadata)
        }
        return state
    }

    /// Writes `count` bytes of a pattern at `address` of a guest's memory, in both the state and the model.
    mutating func write(guest: GuestID, memory: String, address: Int, count: Int, fill: UInt8, state: inout ReplicatedState,
                        allocator: PageAllocator) throws {
        let bytes = (0..<count).map { fill &+ UInt8(truncatingIfNeeded: $0 &* 13) }
        var guestState = state.guests[guest] ?? GuestState()
        var map = guestState.memories[memory] ?? PageMap(allocator: allocator)
        try map.write(bytes, at: UInt64(address))
        guestState.memories[memory] = map
        state.guests[guest] = guestState
        var model = self[guest, default: GuestModel()].memories[memory, default: []]
        if count > 0 {  // writing nothing grows nothing
            let end = (address + count + Page.size - 1) / Page.size * Page.size
            if model.count < end { model += [UInt8](repeating: 0, count: end - model.count) }
            model.replaceSubrange(address..<(address + count), with: bytes)
        }
        self[guest, default: GuestModel()].memories[memory] = model
    }
}

/// Whether `state` holds exactly the model's guests, metadata, memory sizes and bytes.
func expectEqual(_ state: ReplicatedState, _ model: StateModel, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(Set(state.guests.keys) == Set(model.keys), "\(context): guests", sourceLocation: sourceLocation)
    for (id, guest) in model {
        guard let actual = state.guests[id] else { continue }
        #expect(actual.metadata == guest.metadata, "\(context): guest \(id) metadata", sourceLocation: sourceLocation)
        #expect(Set(actual.memories.keys) == Set(guest.memories.keys), "\(context): guest \(id) memories", sourceLocation: sourceLocation)
        for (name, bytes) in guest.memories {
            guard let map = actual.memories[name] else { continue }
            #expect(map.sizeInPages == UInt64(bytes.count / Page.size), "\(context): guest \(id) \(name) size", sourceLocation: sourceLocation)
            let read = (try? map.read(at: 0, count: bytes.count)) ?? []
            if read != bytes {
                let offset = zip(read, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(read.count, bytes.count)
                Issue.record("\(context): guest \(id) \(name) differs at byte \(offset)", sourceLocation: sourceLocation)
            }
        }
    }
}
