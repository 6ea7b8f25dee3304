/// Header of a `TrieNode`.
struct TrieHeader {
    /// Bit `d` is set when the node has an element for digit `d`.
    var bitmap: UInt64
    /// Pages in the subtree.
    var count: Int
    /// Elements the allocation has room for.
    var capacity: Int
}

/// An element of a leaf: the page, and its byte address so that lookups never touch the `Page`
/// object (a cache miss each, and a million of them do not fit in cache).
struct LeafEntry {
    let page: Page
    let address: UnsafeRawPointer

    init(_ page: Page) {
        self.page = page
        address = page.address
    }
}

/// A node of `PageDelta`'s radix trie: 64-way, keyed by 6 bits of the page index per level, with one
/// tail-allocated element per set bitmap bit, in digit order. Leaves (level 0) hold `LeafEntry`s;
/// branches hold their children as `AnyObject` — leaves one level up, branches above.
///
/// Invariant: a node is mutated only when the caller holds the only reference to it
/// (`isKnownUniquelyReferenced`); shared nodes are copied first. This is what makes `PageDelta` a
/// persistent value with O(1) copies.
final class TrieNode<Element>: ManagedBuffer<TrieHeader, Element> {
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

    /// A node holding only `element` at `digit`, counting `count` pages.
    static func single(_ element: Element, digit: UInt64, count: Int, capacity: Int) -> TrieNode {
        let node = make(capacity: capacity)
        node.withUnsafeMutablePointers { header, elements in
            header.pointee.bitmap = 1 << digit
            header.pointee.count = count
            elements.initialize(to: element)
        }
        return node
    }

    var bitmap: UInt64 { header.bitmap }
    var count: Int { header.count }

    @inline(__always)
    func element(at position: Int) -> Element {
        withUnsafeMutablePointerToElements { $0[position] }
    }

    @inline(__always)
    func element(for digit: UInt64) -> Element {
        element(at: Trie.position(of: digit, in: bitmap))
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
    static func insert(_ element: Element, digit: UInt64, into node: inout TrieNode) {
        let n = node.bitmap.nonzeroBitCount
        let position = Trie.position(of: digit, in: node.bitmap)
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
    func remove(digit: UInt64) -> Element {
        withUnsafeMutablePointers { header, elements in
            let n = header.pointee.bitmap.nonzeroBitCount
            let position = Trie.position(of: digit, in: header.pointee.bitmap)
            let removed = (elements + position).move()
            (elements + position).moveInitialize(from: elements + position + 1, count: n - position - 1)
            header.pointee.bitmap &= ~(1 << digit)
            return removed
        }
    }

    /// Gives `body` in-place, mutable access to the element for a present digit; `self` must be
    /// uniquely referenced.
    func withElement<R>(for digit: UInt64, _ body: (inout Element) -> R) -> R {
        withUnsafeMutablePointerToElements { elements in
            body(&(elements + Trie.position(of: digit, in: bitmap)).pointee)
        }
    }
}

typealias Leaf = TrieNode<LeafEntry>
typealias Branch = TrieNode<AnyObject>

/// Shape constants and helpers shared by the trie's operations.
enum Trie {
    static let bitsPerLevel: UInt64 = 6
    static let topShift: UInt64 = 60

    /// Position of `digit`'s element among the present ones.
    @inline(__always)
    static func position(of digit: UInt64, in bitmap: UInt64) -> Int {
        (bitmap & ((1 << digit) &- 1)).nonzeroBitCount
    }

    /// The bitmap of a node stored as `AnyObject` at `shift` (a leaf at 0, a branch above).
    @inline(__always)
    static func bitmap(of node: AnyObject, shift: UInt64) -> UInt64 {
        shift == 0 ? unsafeDowncast(node, to: Leaf.self).bitmap : unsafeDowncast(node, to: Branch.self).bitmap
    }

    /// The page count of a node stored as `AnyObject` at `shift`.
    @inline(__always)
    static func count(of node: AnyObject, shift: UInt64) -> Int {
        shift == 0 ? unsafeDowncast(node, to: Leaf.self).count : unsafeDowncast(node, to: Branch.self).count
    }

    /// Gives `body` in-place access to a node stored as `AnyObject` as its concrete type: a leaf at
    /// shift 0, a branch above. No reference is copied, so `isKnownUniquelyReferenced` inside `body`
    /// sees the true count. Sound because a class reference and `AnyObject` share one representation.
    static func withNode<R>(
        _ node: inout AnyObject, shift: UInt64, leaf: (inout Leaf) -> R, branch: (inout Branch) -> R
    ) -> R {
        withUnsafeMutablePointer(to: &node) { pointer in
            shift == 0 ? pointer.withMemoryRebound(to: Leaf.self, capacity: 1) { leaf(&$0.pointee) }
                       : pointer.withMemoryRebound(to: Branch.self, capacity: 1) { branch(&$0.pointee) }
        }
    }

    /// A chain of nodes from `shift` down to a leaf holding only `page` at `index`.
    static func path(to index: PageIndex, shift: UInt64, page: Page) -> AnyObject {
        var node: AnyObject = Leaf.single(LeafEntry(page), digit: index & 63, count: 1, capacity: 2)
        var level: UInt64 = bitsPerLevel
        while level <= shift {
            node = Branch.single(node, digit: (index >> level) & 63, count: 1, capacity: 1)
            level += bitsPerLevel
        }
        return node
    }
}
