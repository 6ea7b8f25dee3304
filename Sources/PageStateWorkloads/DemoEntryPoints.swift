import PageStateSandbox

/// The default worker's entry points: a realistic demo and test workload.
///
/// Heap layout: page 0 holds the counter (u64 at 0); pages 1...256 a key-value table of 4,096 slots
/// of 256 bytes (used u8, key length u8, value length u16, 4 reserved, key ≤ 64, value ≤ 184).
/// Stable memory: an append-only log, `count u64 · bytes u64` then entries `length u32 · bytes`.
public enum DemoEntryPoints {
    static let tableFirstPage: UInt64 = 1
    static let tableSlots: UInt64 = 4096
    static let slotSize: UInt64 = 256
    static let maximumKey = 64
    static let maximumValue = 184
    static let logHeader: UInt64 = 16

    /// Every demo entry point (hostile ones excluded).
    public static func register(in runtime: inout WorkerRuntime) {
        runtime.register("counter.increment") { context in
            if context.heap.sizeInPages == 0 { try context.heap.grow(byPages: 1) }
            let value = try context.heap.load(UInt64.self, at: 0) &+ 1
            try context.heap.store(value, at: 0)
            return bytes(of: value)
        }
        runtime.register("counter.get") { context in
            bytes(of: context.heap.sizeInPages == 0 ? 0 : try context.heap.load(UInt64.self, at: 0))
        }
        runtime.register("kv.put", put)
        runtime.register("kv.get", get)
        runtime.register("log.append", append)
        runtime.register("log.get", logEntry)
        runtime.register("pages.write", writePages)
        runtime.register("stable.bench", stableBenchmark)
        runtime.register("host.echo") { context in try context.hostCall(context.input) }
        runtime.register("host.calls", hostCalls)
        runtime.register("system.data") { context in
            bytes(of: context.system.guestID) + bytes(of: context.system.caller) + bytes(of: context.system.height)
                + bytes(of: context.system.time)
        }
        runtime.register("fail") { _ in throw DemoError.requested }
    }

    /// Input: key length u16 · key · value. Output: 1 when the key is new, 0 when replaced.
    static func put(_ context: ExecutionContext) throws -> [UInt8] {
        let (key, value) = try keyAndValue(context.input)
        let needed = tableFirstPage + tableSlots * slotSize / 4096
        if context.heap.sizeInPages < needed { try context.heap.grow(byPages: needed - context.heap.sizeInPages) }
        guard let (slot, found) = try find(key, in: context.heap) else { throw DemoError.tableFull }
        let base = slot
        try context.heap.store(UInt8(1), at: base)
        try context.heap.store(UInt8(key.count), at: base + 1)
        try context.heap.store(UInt16(value.count), at: base + 2)
        try context.heap.write(key, at: base + 8)
        try context.heap.write(value, at: base + 8 + UInt64(maximumKey))
        return [found ? 0 : 1]
    }

    /// Input: the key. Output: the value, or nothing.
    static func get(_ context: ExecutionContext) throws -> [UInt8] {
        guard context.input.count <= maximumKey, context.heap.sizeInPages > tableFirstPage,
              let (slot, found) = try find(context.input, in: context.heap), found else { return [] }
        let length = Int(try context.heap.load(UInt16.self, at: slot + 2))
        return try context.heap.read(at: slot + 8 + UInt64(maximumKey), count: length)
    }

    /// The slot holding `key`, or the free slot where it would go (linear probing); nil when full.
    private static func find(_ key: [UInt8], in heap: GuestMemory) throws -> (UInt64, Bool)? {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        for probe in 0..<tableSlots {
            let slot = tableFirstPage * 4096 + ((hash &+ probe) % tableSlots) * slotSize
            guard try heap.load(UInt8.self, at: slot) == 1 else { return (slot, false) }
            let length = Int(try heap.load(UInt8.self, at: slot + 1))
            if length == key.count, try heap.read(at: slot + 8, count: length) == key { return (slot, true) }
        }
        return nil
    }

    private static func keyAndValue(_ input: [UInt8]) throws -> ([UInt8], [UInt8]) {
        guard input.count >= 2 else { throw DemoError.malformedInput }
        let keyLength = Int(input[0]) | Int(input[1]) << 8
        guard keyLength <= maximumKey, input.count >= 2 + keyLength, input.count - 2 - keyLength <= maximumValue else {
            throw DemoError.malformedInput
        }
        return (Array(input[2..<(2 + keyLength)]), Array(input[(2 + keyLength)...]))
    }

    /// Appends the input to the stable log; returns the new entry count.
    static func append(_ context: ExecutionContext) throws -> [UInt8] {
        let stable = context.stable
        if stable.sizeInPages == 0 { try stable.grow(byPages: 1) }
        let count = try stable.load(UInt64.self, at: 0)
        let used = try stable.load(UInt64.self, at: 8)
        let end = logHeader + used + 4 + UInt64(context.input.count)
        let pages = (end + 4095) / 4096
        if pages > stable.sizeInPages { try stable.grow(byPages: pages - stable.sizeInPages) }
        try stable.store(UInt32(context.input.count), at: logHeader + used)
        try stable.write(context.input, at: logHeader + used + 4)
        try stable.store(used + 4 + UInt64(context.input.count), at: 8)
        try stable.store(count + 1, at: 0)
        return bytes(of: count + 1)
    }

    /// Input: entry number u64. Output: that entry, or nothing.
    static func logEntry(_ context: ExecutionContext) throws -> [UInt8] {
        guard context.stable.sizeInPages > 0, context.input.count == 8 else { return [] }
        let wanted = context.input.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard wanted < (try context.stable.load(UInt64.self, at: 0)) else { return [] }
        var offset = logHeader
        for _ in 0..<wanted { offset += 4 + UInt64(try context.stable.load(UInt32.self, at: offset)) }
        return try context.stable.read(at: offset + 4, count: Int(try context.stable.load(UInt32.self, at: offset)))
    }

    /// Input: pages u32 · seed u64 · heap pages u64. Grows the heap to the given size if smaller, then
    /// writes 8 bytes into that many distinct pseudo-random pages. Output: the pages written (u64).
    static func writePages(_ context: ExecutionContext) throws -> [UInt8] {
        guard context.input.count == 20 else { throw DemoError.malformedInput }
        let (count, seed, heapPages) = context.input.withUnsafeBytes {
            (UInt64($0.loadUnaligned(fromByteOffset: 0, as: UInt32.self)), $0.loadUnaligned(fromByteOffset: 4, as: UInt64.self),
             $0.loadUnaligned(fromByteOffset: 12, as: UInt64.self))
        }
        let heap = context.heap
        if heap.sizeInPages < heapPages { try heap.grow(byPages: heapPages - heap.sizeInPages) }
        guard count <= heap.sizeInPages else { throw DemoError.malformedInput }
        // A random permutation prefix: distinct pages, deterministic for the seed.
        var generator = DemoRandom(seed: seed)
        var chosen = Set<UInt64>()
        let bytes = heap.unsafeBytes
        while UInt64(chosen.count) < count {
            let page = generator.next() % heap.sizeInPages
            guard chosen.insert(page).inserted else { continue }
            bytes.storeBytes(of: seed ^ page, toByteOffset: Int(page) * 4096 + Int(seed % 512) * 8, as: UInt64.self)
        }
        return Self.bytes(of: count)
    }

    /// Input: iterations u64. Times `iterations` 8-byte stable-memory writes and reads inside the
    /// executing process and returns nanoseconds per operation (u64). Needs one stable page.
    static func stableBenchmark(_ context: ExecutionContext) throws -> [UInt8] {
        guard context.input.count == 8 else { throw DemoError.malformedInput }
        let iterations = context.input.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        if context.stable.sizeInPages == 0 { try context.stable.grow(byPages: 1) }
        let stable = context.stable
        let clock = ContinuousClock()
        var sum: UInt64 = 0
        let elapsed = try clock.measure {
            for i in 0..<iterations {
                let offset = (i &* 8) % 4096
                try stable.store(i, at: offset)
                sum &+= try stable.load(UInt64.self, at: offset)
            }
        }
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return bytes(of: UInt64(nanoseconds / Double(max(1, iterations * 2)))) + bytes(of: sum)
    }

    /// Input: calls u64. Makes that many 8-byte host calls and returns nanoseconds per round trip (u64).
    static func hostCalls(_ context: ExecutionContext) throws -> [UInt8] {
        guard context.input.count == 8 else { throw DemoError.malformedInput }
        let calls = context.input.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let elapsed = try ContinuousClock().measure {
            for i in 0..<calls { _ = try context.hostCall(bytes(of: i)) }
        }
        let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return bytes(of: UInt64(nanoseconds / Double(max(1, calls))))
    }

    static func bytes(of value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

enum DemoError: Error, CustomStringConvertible {
    case requested, malformedInput, tableFull

    var description: String {
        switch self {
        case .requested: "failure requested"
        case .malformedInput: "malformed input"
        case .tableFull: "table full"
        }
    }
}

/// xorshift64*: a small deterministic generator for the demo workload.
struct DemoRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
