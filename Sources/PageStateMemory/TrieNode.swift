/// Header of a `TrieNode`.
struct TrieHeader {
    /// Bit `d` is set when the node has an element for digit `d`.
    var bitmap: UInt64
    /// Pages in the subtree.
    var count: Int
    /// Elements the allocation has room for.
    var capacity: Int
}

/// A node of `PageDelta`'s radix trie: 64-way, keyed by 6 bits of the page index per level, with one
/// tail-allocated element per set bitmap bit in digit order. Elements are `Page`s at level 0 (shift 0)
/// and `TrieNode`s above.
///
/// Invariant: a node is mutated only when the caller holds the only reference to it
/// (`isKnownUniquelyReferenced`); shared nodes are copied first. This is what makes `PageDelta` a
/// persistent value with O(1) copies.
final class TrieNode: ManagedBuffer<TrieHeader, AnyObject> {
    static let bitsPerLevel: UInt64 = 6
    static let topShift: UInt64 = 60

    deinit {
        _ = withUnsafeMutablePointers { header, elements in
            elements.deinitialize(count: header.pointee.bitmap.nonzeroBitCount)
        }
    }

    /// An empty node with room for `capacity` elements.
    static func make(capacity: Int) -> TrieNode {
        let node = create(minimumCapacity: capacity) { _ in TrieHeader(bitmap: 0, count: 0, capacity: capacity) }
        return unsafeDowncast(node, to: TrieNode.self)
    }

    /// A chain of nodes from `shift` down to level 0 holding only `page` at `index`.
    static func path(to index: PageIndex, shift: UInt64, page: Page) -> TrieNode {
        var element: AnyObject = page
        var level: UInt64 = 0
        while true {
            let node = make(capacity: level == 0 ? 2 : 1)
            node.withUnsafeMutablePointers { header, elements in
                header.pointee.bitmap = 1 << ((index >> level) & 63)
                header.pointee.count = 1
                elements.initialize(to: element)
            }
            if level == shift { return node }
            element = node
            level += bitsPerLevel
        }
    }

    var bitmap: UInt64 { header.bitmap }
    var count: Int { header.count }

    /// Position of `digit`'s element among the present ones.
    @inline(__always)
    static func position(of digit: UInt64, in bitmap: UInt64) -> Int {
        (bitmap & ((1 << digit) &- 1)).nonzeroBitCount
    }

    @inline(__always)
    func element(at position: Int) -> AnyObject {
        withUnsafeMutablePointerToElements { $0[position] }
    }

    /// A copy sharing all elements, with room for `extra` more.
    ///
    /// - Complexity: O(elements).
    func copy(extra: Int) -> TrieNode {
        withUnsafeMutablePointers { header, elements in
            let n = header.pointee.bitmap.nonzeroBitCount
            let copy = TrieNode.make(capacity: n + extra)
            copy.withUnsafeMutablePointers { copyHeader, copyElements in
                copyHeader.pointee.bitmap = header.pointee.bitmap
                copyHeader.pointee.count = header.pointee.count
                copyElements.initialize(from: elements, count: n)
            }
            return copy
        }
    }

    /// Inserts `element` for a digit not yet present; `node` must be uniquely referenced.
    ///
    /// - Complexity: O(elements).
    static func insert(_ element: AnyObject, digit: UInt64, into node: inout TrieNode) {
        let n = node.bitmap.nonzeroBitCount
        let position = position(of: digit, in: node.bitmap)
        if n == node.header.capacity {
            let grown = make(capacity: Swift.min(64, Swift.max(2, n * 2)))
            node.withUnsafeMutablePointers { header, elements in
                grown.withUnsafeMutablePointers { grownHeader, grownElements in
                    grownHeader.pointee.bitmap = header.pointee.bitmap
                    grownHeader.pointee.count = header.pointee.count
                    grownElements.moveInitialize(from: elements, count: n)
                }
                header.pointee.bitmap = 0  // elements moved out: nothing to deinitialize
            }
            node = grown
        }
        node.withUnsafeMutablePointers { header, elements in
            (elements + position + 1).moveInitialize(from: elements + position, count: n - position)
            (elements + position).initialize(to: element)
            header.pointee.bitmap |= 1 << digit
        }
    }

    /// Removes and returns the element for a present digit; `self` must be uniquely referenced.
    ///
    /// - Complexity: O(elements).
    func remove(digit: UInt64) -> AnyObject {
        withUnsafeMutablePointers { header, elements in
            let n = header.pointee.bitmap.nonzeroBitCount
            let position = TrieNode.position(of: digit, in: header.pointee.bitmap)
            let removed = (elements + position).move()
            (elements + position).moveInitialize(from: elements + position + 1, count: n - position - 1)
            header.pointee.bitmap &= ~(1 << digit)
            return removed
        }
    }
}
