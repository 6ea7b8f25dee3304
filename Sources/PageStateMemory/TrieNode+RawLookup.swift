/// Lookup without reference counting.
///
/// Following node references through Swift's ARC retains and releases every node on the path;
/// those are atomic read-modify-writes, which on x86 also stop independent lookups from overlapping
/// their cache misses. Lookups instead walk the nodes' memory through raw pointers: sound because
/// the caller's `PageDelta` keeps the whole path alive for the duration of the walk.
@usableFromInline
enum TrieLayout {
    @usableFromInline
    typealias Offsets = (
        bitmap: Int, count: Int, capacity: Int, children: Int, entries: Int, entryAddress: Int, entryStride: Int
    )

    /// Byte offsets from a node's address: the header's bitmap, count and capacity (after Swift's 16-byte
    /// object header), a branch's first child and a leaf's first entry (after the 24-byte `TrieHeader`),
    /// and the address field within an entry. Constants, so lookups need no lazy-global check;
    /// `measuredOffsets()` verifies them on real nodes in the test suite.
    @usableFromInline
    static let offsets: Offsets = (
        bitmap: 16, count: 24, capacity: 32, children: 40, entries: 40, entryAddress: 8, entryStride: 16
    )

    /// The offsets as found on real nodes.
    static func measuredOffsets() -> Offsets {
        func measure<Element>(_ node: TrieNode<Element>) -> (header: Int, elements: Int) {
            let base = UnsafeRawPointer(Unmanaged.passUnretained(node).toOpaque())
            return node.withUnsafeMutablePointers { header, elements in
                (UnsafeRawPointer(header) - base, UnsafeRawPointer(elements) - base)
            }
        }
        let branch = measure(Branch.make(capacity: 1))
        let leaf = measure(Leaf.make(capacity: 1))
        precondition(branch.header == leaf.header, "both node kinds share the header layout")
        return (branch.header + MemoryLayout<TrieHeader>.offset(of: \.bitmap)!,
                branch.header + MemoryLayout<TrieHeader>.offset(of: \.count)!,
                branch.header + MemoryLayout<TrieHeader>.offset(of: \.capacity)!,
                branch.elements, leaf.elements, MemoryLayout<LeafEntry>.offset(of: \.address)!,
                MemoryLayout<LeafEntry>.stride)
    }

    /// The address of the page at `index` in the subtree rooted at the node at address `node`, whose
    /// digit is at `shift`; nil when absent.
    ///
    /// Written for few instructions per lookup: independent lookups overlap their cache misses only as
    /// far as the processor's reorder window reaches, so every instruction before the leaf's miss
    /// delays the next lookup's. Hence wrapping shifts (`&>>`), one loop over the branches that exits
    /// on the shift, and direct branches read without their bitmap (absent children are null there).
    ///
    /// - Complexity: O(height), no reference counting, no allocation.
    @inlinable @inline(__always)
    static func pageAddress(
        at index: PageIndex, in node: UnsafeRawPointer, shift: UInt64,
        offsets: Offsets
    ) -> UnsafeRawPointer? {
        var object = node
        var shift = shift
        while shift != 0 {
            let digit = (index &>> shift) & 63
            let position: Int
            if isDirect(object, offsets: offsets) {
                position = Int(truncatingIfNeeded: digit)
            } else {
                guard let compressed = compressedPosition(of: digit, in: object, offsets: offsets) else { return nil }
                position = compressed
            }
            guard let child = object.load(fromByteOffset: offsets.children &+ position &* MemoryLayout<AnyObject>.stride,
                                          as: UnsafeRawPointer?.self) else { return nil }
            object = child
            shift &-= 6
        }
        let digit = index & 63
        let position: Int
        if isDirect(object, offsets: offsets) {
            guard object.load(fromByteOffset: offsets.bitmap, as: UInt64.self) &>> digit & 1 != 0 else { return nil }
            position = Int(truncatingIfNeeded: digit)
        } else {
            guard let compressed = compressedPosition(of: digit, in: object, offsets: offsets) else { return nil }
            position = compressed
        }
        return object.load(fromByteOffset: offsets.entries &+ position &* offsets.entryStride &+ offsets.entryAddress,
                           as: UnsafeRawPointer.self)
    }

    /// Whether the node at `object` has the direct layout (capacity 64): the element for digit `d` in
    /// slot `d`, no population count needed (baseline x86-64 computes one in a dozen instructions).
    @inlinable @inline(__always)
    static func isDirect(_ object: UnsafeRawPointer, offsets: Offsets) -> Bool {
        object.load(fromByteOffset: offsets.capacity, as: Int.self) == 64
    }

    /// The slot of `digit`'s element in the compressed node at `object`; nil when absent.
    @inlinable @inline(__always)
    static func compressedPosition(of digit: UInt64, in object: UnsafeRawPointer, offsets: Offsets) -> Int? {
        let bitmap = object.load(fromByteOffset: offsets.bitmap, as: UInt64.self)
        guard bitmap &>> digit & 1 != 0 else { return nil }
        return (bitmap & ((1 &<< digit) &- 1)).nonzeroBitCount
    }
}

extension PageDelta {
    /// The bytes of the page at `index`, without retaining anything; valid while `self` holds the page.
    ///
    /// - Complexity: O(log₆₄ n), no reference counting, no allocation.
    @inlinable @inline(__always)
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer? {
        guard let rootAddress, covers(index),
              let address = TrieLayout.pageAddress(at: index, in: rootAddress, shift: rootShift,
                                                   offsets: TrieLayout.offsets) else { return nil }
        return UnsafeRawBufferPointer(start: address, count: Page.size)
    }
}
