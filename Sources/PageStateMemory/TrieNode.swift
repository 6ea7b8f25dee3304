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

    init(_ page: consuming Page) {
        address = page.address
        self.page = page
    }
}

/// A node of `PageDelta`'s radix trie: 64-way, keyed by 6 bits of the page index per level.
/// Leaves (level 0) hold `LeafEntry`s; branches hold their children as `AnyObject` — leaves one level
/// up, branches above.
///
/// Two layouts, told apart by capacity: below 64, elements are compressed — one per set bitmap bit,
/// in digit order, so a digit's slot is the population count of the bits below it; at capacity 64
/// (*direct*), the element for digit `d` sits in slot `d` and slots of absent digits are
/// zero bytes (never an object: the bitmap says which slots hold one), so dense nodes need neither
/// shifting on insert nor a population count on lookup, and raw lookups find a direct branch's absent
/// children null without reading its bitmap. A full node looks the same in both layouts.
///
/// The header is always reached through its pointer: `ManagedBuffer.header` is a stored class
/// property, whose accessors pay for dynamic exclusivity checks.
///
/// Element pointers handed out by a node stay valid while the node is alive: a `ManagedBuffer`'s
/// elements never move.
///
/// Invariant: a node is mutated only when the caller holds the only reference to it
/// (`isKnownUniquelyReferenced`); shared nodes are copied first. This is what makes `PageDelta` a
/// persistent value with O(1) copies.
final class TrieNode<Element>: ManagedBuffer<TrieHeader, Element> {
    static var directCapacity: Int { 64 }

    deinit {
        withUnsafeMutablePointers { header, elements in
            let bitmap = header.pointee.bitmap
            if header.pointee.capacity == Self.directCapacity {
                var remaining = bitmap
                while remaining != 0 {
                    (elements + remaining.trailingZeroBitCount).deinitialize(count: 1)
                    remaining &= remaining &- 1
                }
            } else {
                elements.deinitialize(count: bitmap.nonzeroBitCount)
            }
        }
    }

    /// An empty node with room for `capacity` elements (at most 64; 64 means the direct layout,
    /// whose slots start as zero bytes).
    static func make(capacity: Int) -> TrieNode {
        let node = unsafeDowncast(create(minimumCapacity: capacity) { _ in TrieHeader(bitmap: 0, count: 0, capacity: capacity) },
                                  to: TrieNode.self)
        if capacity == directCapacity {
            node.withUnsafeMutablePointerToElements { Self.clear($0, count: directCapacity) }
        }
        return node
    }

    /// Sets `count` element slots, holding nothing, to zero bytes.
    @inline(__always)
    private static func clear(_ slots: UnsafeMutablePointer<Element>, count: Int) {
        UnsafeMutableRawPointer(slots).initializeMemory(as: UInt8.self, repeating: 0, count: count * MemoryLayout<Element>.stride)
    }

    /// A node holding only `element` at `digit`, counting `count` pages.
    static func single(_ element: consuming Element, digit: UInt64, count: Int, capacity: Int) -> TrieNode {
        let node = make(capacity: capacity)
        let slot = node.withUnsafeMutablePointers { header, elements in
            header.pointee.bitmap = 1 << digit
            header.pointee.count = count
            return elements + (capacity == directCapacity ? Int(digit) : 0)
        }
        // Outside the closure, so that `element` is moved in rather than copied.
        slot.initialize(to: element)
        return node
    }

    @inline(__always)
    var bitmap: UInt64 { withUnsafeMutablePointerToHeader { $0.pointee.bitmap } }
    @inline(__always)
    var count: Int { withUnsafeMutablePointerToHeader { $0.pointee.count } }
    @inline(__always)
    var isDirect: Bool { withUnsafeMutablePointerToHeader { $0.pointee.capacity } == Self.directCapacity }

    /// Adds `delta` to the subtree's page count.
    @inline(__always)
    func addToCount(_ delta: Int) { withUnsafeMutablePointerToHeader { $0.pointee.count += delta } }

    /// The slot holding `digit`'s element (present or about to be inserted at its place).
    @inline(__always)
    func slot(of digit: UInt64) -> Int {
        withUnsafeMutablePointerToHeader { header in
            header.pointee.capacity == Self.directCapacity
                ? Int(digit) : Trie.position(of: digit, in: header.pointee.bitmap)
        }
    }

    @inline(__always)
    func element(for digit: UInt64) -> Element {
        withUnsafeMutablePointerToElements { $0[slot(of: digit)] }
    }

    /// Initializes `target`'s slots with `self`'s elements (copied, or moved when `move`), in
    /// `target`'s layout; `target` must have room for them.
    private func transfer(into target: TrieNode, move: Bool) {
        withUnsafeMutablePointers { header, elements in
            target.withUnsafeMutablePointers { targetHeader, targetElements in
                let bitmap = header.pointee.bitmap
                targetHeader.pointee.bitmap = bitmap
                targetHeader.pointee.count = header.pointee.count
                let sourceDirect = header.pointee.capacity == Self.directCapacity
                let targetDirect = targetHeader.pointee.capacity == Self.directCapacity
                if bitmap == .max || (!sourceDirect && !targetDirect) {
                    // Same positions in both layouts: one contiguous transfer.
                    let n = bitmap.nonzeroBitCount
                    if move { targetElements.moveInitialize(from: elements, count: n) }
                    else { targetElements.initialize(from: elements, count: n) }
                    return
                }
                var remaining = bitmap
                var position = 0
                while remaining != 0 {
                    let digit = remaining.trailingZeroBitCount
                    let from = elements + (sourceDirect ? digit : position)
                    let to = targetElements + (targetDirect ? digit : position)
                    if move { to.moveInitialize(from: from, count: 1) } else { to.initialize(from: from, count: 1) }
                    position += 1
                    remaining &= remaining &- 1
                }
            }
        }
    }

    /// A copy sharing all elements, with room for `extra` more.
    ///
    /// - Complexity: O(elements).
    func copy(extra: Int) -> TrieNode {
        let copy = TrieNode.make(capacity: isDirect ? Self.directCapacity : Swift.min(Self.directCapacity, bitmap.nonzeroBitCount + extra))
        transfer(into: copy, move: false)
        return copy
    }

    /// A larger node holding `node`'s elements, moved out of it: twice the capacity up to 16, the
    /// direct layout beyond. `node` must be uniquely referenced.
    ///
    /// - Complexity: O(elements).
    static func grown(from node: consuming TrieNode) -> TrieNode {
        let n = node.bitmap.nonzeroBitCount
        // Straight to the direct layout past 16: no shifting, no population counts.
        let grown = make(capacity: n >= 16 ? directCapacity : Swift.max(2, n * 2))
        node.transfer(into: grown, move: true)
        node.withUnsafeMutablePointerToHeader { $0.pointee.bitmap = 0 }  // moved out: nothing to deinitialize
        return grown
    }

    /// Removes and returns the element for a present digit; `self` must be uniquely referenced.
    ///
    /// - Complexity: O(elements) compressed, O(1) direct.
    func remove(digit: UInt64) -> Element {
        withUnsafeMutablePointers { header, elements in
            let bitmap = header.pointee.bitmap
            header.pointee.bitmap = bitmap & ~(1 << digit)
            if header.pointee.capacity == Self.directCapacity {
                let removed = (elements + Int(digit)).move()
                Self.clear(elements + Int(digit), count: 1)
                return removed
            }
            let n = bitmap.nonzeroBitCount
            let position = Trie.position(of: digit, in: bitmap)
            let removed = (elements + position).move()
            (elements + position).moveInitialize(from: elements + position + 1, count: n - position - 1)
            return removed
        }
    }

    /// Gives `body` in-place, mutable access to the element for a present digit; `self` must be
    /// uniquely referenced.
    @inline(__always)
    func withElement<R>(for digit: UInt64, _ body: (inout Element) -> R) -> R {
        withUnsafeMutablePointerToElements { elements in body(&(elements + slot(of: digit)).pointee) }
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
    static func path(to index: PageIndex, shift: UInt64, page: consuming Page) -> AnyObject {
        var node: AnyObject = Leaf.single(LeafEntry(page), digit: index & 63, count: 1, capacity: 4)
        var level: UInt64 = bitsPerLevel
        while level <= shift {
            node = Branch.single(node, digit: (index >> level) & 63, count: 1, capacity: 1)
            level += bitsPerLevel
        }
        return node
    }
}
