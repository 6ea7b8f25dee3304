/// Lookup without reference counting.
///
/// Following node references through Swift's ARC retains and releases every node on the path;
/// those are atomic read-modify-writes, which on x86 also stop independent lookups from overlapping
/// their cache misses. Lookups instead walk the nodes' memory through raw pointers: sound because
/// the caller's `PageDelta` keeps the whole path alive for the duration of the walk.
enum TrieLayout {
    /// Byte offsets from a node's address: the header's bitmap, a branch's first child, a leaf's
    /// first entry, and the address field within an entry. Measured on real nodes once, so nothing
    /// about ManagedBuffer's layout is hard-coded.
    static let offsets: (bitmap: Int, children: Int, entries: Int, entryAddress: Int) = {
        func measure<Element>(_ node: TrieNode<Element>) -> (bitmap: Int, elements: Int) {
            let base = UnsafeRawPointer(Unmanaged.passUnretained(node).toOpaque())
            return node.withUnsafeMutablePointers { header, elements in
                (UnsafeRawPointer(header) + MemoryLayout<TrieHeader>.offset(of: \.bitmap)! - base,
                 UnsafeRawPointer(elements) - base)
            }
        }
        let branch = measure(Branch.make(capacity: 1))
        let leaf = measure(Leaf.make(capacity: 1))
        precondition(branch.bitmap == leaf.bitmap)
        return (branch.bitmap, branch.elements, leaf.elements, MemoryLayout<LeafEntry>.offset(of: \.address)!)
    }()

    /// The address of the page at `index` in the subtree rooted at the node at address `node`, whose
    /// digit is at `shift`; nil when absent.
    ///
    /// - Complexity: O(height), no reference counting, no allocation.
    @inline(__always)
    static func pageAddress(at index: PageIndex, in node: UnsafeRawPointer, shift: UInt64) -> UnsafeRawPointer? {
        let offsets = offsets
        var object = node
        var shift = shift
        while true {
            let digit = (index >> shift) & 63
            let bitmap = object.load(fromByteOffset: offsets.bitmap, as: UInt64.self)
            guard bitmap & (1 << digit) != 0 else { return nil }
            let position = Trie.position(of: digit, in: bitmap)
            if shift == 0 {
                let entry = offsets.entries + position * MemoryLayout<LeafEntry>.stride + offsets.entryAddress
                return object.load(fromByteOffset: entry, as: UnsafeRawPointer.self)
            }
            object = object.load(fromByteOffset: offsets.children + position * MemoryLayout<AnyObject>.stride,
                                 as: UnsafeRawPointer.self)
            shift -= Trie.bitsPerLevel
        }
    }
}

extension PageDelta {
    /// The bytes of the page at `index`, without retaining anything; valid while `self` holds the page.
    ///
    /// - Complexity: O(log₆₄ n), no reference counting, no allocation.
    @inline(__always)
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer? {
        guard let rootAddress, covers(index),
              let address = TrieLayout.pageAddress(at: index, in: rootAddress, shift: rootShift) else { return nil }
        return UnsafeRawBufferPointer(start: address, count: Page.size)
    }
}
