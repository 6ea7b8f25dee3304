import PageStateMemory
import PageStateStore

/// The deterministic workload of the crash soak: what height h writes depends only on (seed, h), so
/// the state at any height can be recomputed from scratch and compared with what recovery loads.
public struct SoakWorkload: Sendable {
    /// One guest in the model: metadata and memories as byte arrays of whole pages.
    public struct GuestModel: Equatable, Sendable {
        public var metadata: [UInt8] = []
        public var memories: [String: [UInt8]] = [:]
    }

    struct Edit {
        var guest: GuestID
        var memory: String
        var address: Int
        var bytes: [UInt8]
    }

    public let seed: UInt64
    static let guests: [GuestID] = [1, 2, 3]
    static let memoryPages = 96

    public init(seed: UInt64) { self.seed = seed }

    /// The writes of height `height`: a few ranges, some crossing pages, some whole pages.
    func edits(at height: Height) -> (edits: [Edit], metadata: (GuestID, [UInt8])) {
        var random = SplitMix64(seed: seed ^ (height &* 0x9E37_79B9_7F4A_7C15))
        let edits = (0..<(1 + Int(random.next() % 6))).map { _ in
            let count = 1 + Int(random.next() % UInt64(3 * Page.size))
            let address = Int(random.next() % UInt64(Self.memoryPages * Page.size - count))
            let fill = UInt8(truncatingIfNeeded: random.next())
            return Edit(guest: Self.guests[Int(random.next() % 3)], memory: random.next() % 3 == 0 ? "stable" : "heap",
                        address: address, bytes: (0..<count).map { fill &+ UInt8(truncatingIfNeeded: $0 &* 31) })
        }
        let guest = Self.guests[Int(random.next() % 3)]
        return (edits, (guest, withUnsafeBytes(of: height.littleEndian) { Array($0) }))
    }

    /// Applies height `height`'s writes to `state`.
    public func apply(height: Height, to state: inout ReplicatedState, allocator: PageAllocator) throws {
        let (edits, metadata) = edits(at: height)
        for edit in edits {
            var guest = state.guests[edit.guest] ?? GuestState()
            var memory = guest.memories[edit.memory] ?? PageMap(allocator: allocator)
            try memory.write(edit.bytes, at: UInt64(edit.address))
            guest.memories[edit.memory] = memory
            state.guests[edit.guest] = guest
        }
        state.guests[metadata.0, default: GuestState()].metadata = metadata.1
    }

    /// Brings `model` from height `from` to height `to` by replaying the heights in between.
    ///
    /// - Complexity: O((to − from) × bytes written per height).
    public func advance(_ model: inout [GuestID: GuestModel], from: Height, to: Height) {
        guard to > from else { return }
        for h in (from + 1)...to {
            let (edits, metadata) = edits(at: h)
            for edit in edits {
                var bytes = model[edit.guest, default: GuestModel()].memories[edit.memory, default: []]
                let end = (edit.address + edit.bytes.count + Page.size - 1) / Page.size * Page.size
                if bytes.count < end { bytes += [UInt8](repeating: 0, count: end - bytes.count) }
                bytes.replaceSubrange(edit.address..<(edit.address + edit.bytes.count), with: edit.bytes)
                model[edit.guest, default: GuestModel()].memories[edit.memory] = bytes
            }
            model[metadata.0, default: GuestModel()].metadata = metadata.1
        }
    }

    /// The first way `state` differs from `model`, or nil when it holds exactly the model.
    public static func difference(_ state: ReplicatedState, _ model: [GuestID: GuestModel]) -> String? {
        guard Set(state.guests.keys) == Set(model.keys) else { return "guests \(state.guests.keys.sorted()) != \(model.keys.sorted())" }
        for (id, expected) in model {
            let guest = state.guests[id]!
            if guest.metadata != expected.metadata { return "guest \(id): metadata differs" }
            guard Set(guest.memories.keys) == Set(expected.memories.keys) else { return "guest \(id): memory names differ" }
            for (name, bytes) in expected.memories {
                let memory = guest.memories[name]!
                if memory.sizeInPages != UInt64(bytes.count / Page.size) { return "guest \(id) \(name): size differs" }
                if (try? memory.read(at: 0, count: bytes.count)) != bytes { return "guest \(id) \(name): bytes differ" }
            }
        }
        return nil
    }
}

/// A small, fast, seedable generator (SplitMix64), so workloads replay identically everywhere.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
