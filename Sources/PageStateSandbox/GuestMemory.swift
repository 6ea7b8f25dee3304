import PageStateMemory
import PageStateTracking

/// Pages an execution may still grow its memories by, shared by its heap and stable memory.
final class MemoryAllowance {
    private(set) var remainingPages: UInt64
    private(set) var grownPages: UInt64 = 0

    init(pages: UInt64) { remainingPages = pages }

    func charge(_ pages: UInt64) throws(GuestTrap) {
        guard pages <= remainingPages else {
            throw .memoryAllowanceExhausted(requestedPages: pages, remainingPages: remainingPages)
        }
        remainingPages -= pages
        grownPages += pages
    }
}

/// One of a guest's memories as its code sees it during an execution: checked reads, writes and
/// growth served locally (no IPC), plus the raw bytes for code that manages its own bounds.
///
/// The size the guest sees is the host's (`sizeInPages`); the mapping underneath may be larger after
/// an earlier failed execution grew it (those pages read as zeros, as fresh growth would).
/// Not thread-safe: one execution uses it on one thread.
public final class GuestMemory {
    public let name: String
    /// Most pages the memory may grow to.
    public let capacityInPages: UInt64
    public private(set) var sizeInPages: UInt64
    /// `mapping.address`: fixed for the mapping's lifetime (it reserves the whole capacity), so
    /// that the inlinable `load` and `store` reach it directly.
    @usableFromInline let address: UnsafeMutableRawPointer
    private let mapping: MappedMemory
    private let tracked: TrackedMemory
    private let allowance: MemoryAllowance

    /// The guest's view of `tracked` (its mapping), `sizeInPages` long.
    init(name: String, tracked: TrackedMemory, sizeInPages: UInt64, allowance: MemoryAllowance) {
        self.name = name
        self.mapping = tracked.memory
        address = tracked.memory.address
        self.tracked = tracked
        self.sizeInPages = sizeInPages
        self.allowance = allowance
        capacityInPages = mapping.capacityInPages
    }

    /// Bytes currently accessible.
    public var sizeInBytes: UInt64 { sizeInPages * UInt64(Page.size) }

    /// The accessible bytes, unchecked: writes beyond them fault and end the worker.
    public var unsafeBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: address, count: Int(sizeInBytes))
    }

    @usableFromInline @inline(__always)
    func check(_ offset: UInt64, _ count: Int) throws(GuestTrap) {
        let size = sizeInBytes
        guard offset <= size, UInt64(count) <= size - offset else {
            throw .outOfBounds(memory: name, offset: offset, count: UInt64(count), size: size)
        }
    }

    /// Reads a little-endian integer. Inlinable, so that guest code in other modules gets it
    /// specialized for its integer type (a generic call cost ~30 ns of type metadata lookups).
    ///
    /// - Complexity: O(1), no system calls.
    @inlinable
    public func load<T: FixedWidthInteger>(_: T.Type = T.self, at offset: UInt64) throws(GuestTrap) -> T {
        try check(offset, MemoryLayout<T>.size)
        return T(littleEndian: address.loadUnaligned(fromByteOffset: Int(offset), as: T.self))
    }

    /// Writes a little-endian integer (inlinable, as `load`).
    ///
    /// - Complexity: O(1), no system calls.
    @inlinable
    public func store<T: FixedWidthInteger>(_ value: T, at offset: UInt64) throws(GuestTrap) {
        try check(offset, MemoryLayout<T>.size)
        address.storeBytes(of: value.littleEndian, toByteOffset: Int(offset), as: T.self)
    }

    public func read(at offset: UInt64, count: Int) throws(GuestTrap) -> [UInt8] {
        try check(offset, count)
        return Array(UnsafeRawBufferPointer(start: address + Int(offset), count: count))
    }

    public func write(_ bytes: [UInt8], at offset: UInt64) throws(GuestTrap) {
        try check(offset, bytes.count)
        bytes.withUnsafeBytes { (address + Int(offset)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// Grows the memory by `pages` zero pages, charged against the execution's allowance, and returns
    /// the previous size in pages. Fails — deterministically, changing nothing — beyond the allowance
    /// or the capacity.
    @discardableResult
    public func grow(byPages pages: UInt64) throws(GuestTrap) -> UInt64 {
        let old = sizeInPages
        guard pages <= capacityInPages - old else {
            throw .capacityExceeded(memory: name, requestedPages: old &+ pages, capacityPages: capacityInPages)
        }
        try allowance.charge(pages)
        let new = old + pages
        if new > mapping.sizeInPages {
            // Within the capacity the reservation always holds: mapping zeros cannot fail short of ENOMEM.
            do {
                try tracked.grow(toPages: new)
            } catch {
                preconditionFailure("growing a reserved mapping failed: \(error)")
            }
        }
        sizeInPages = new
        return old
    }
}
