/// A persistent map from page index to `Page`: copies are O(1) and share structure, so snapshots
/// are cheap values; iteration is in ascending index order.
///
/// Representation: a 64-way radix trie over the index (6 bits per level, most significant first,
/// height just enough for the largest index), nodes bitmap-compressed and copied on write. Chosen over
/// swift-collections' `TreeDictionary` by measurement: see `design/performance.md`.
///
/// Thread safety: a value may be read from many threads; nodes reachable from more than one value
/// are never mutated (see `TrieNode`), which is what makes the `@unchecked Sendable` sound.
public struct PageDelta: @unchecked Sendable {
    /// A `Leaf` when `rootShift` is 0, a `Branch` above. Call `rootChanged()` after changing it.
    var root: AnyObject?
    /// `root`'s address, unretained, for lookups that must not touch reference counts.
    @usableFromInline
    private(set) var rootAddress: UnsafeRawPointer?
    /// Shift of the root's digit: the trie covers indices below 2^(rootShift + 6).
    @usableFromInline
    var rootShift: UInt64 = 0

    /// An empty delta.
    public init() {}

    /// The number of pages.
    ///
    /// - Complexity: O(1).
    public var count: Int { root.map { Trie.count(of: $0, shift: rootShift) } ?? 0 }

    /// Whether the delta holds no pages.
    ///
    /// - Complexity: O(1).
    public var isEmpty: Bool { root == nil }

    /// Whether `index` is below the range the root covers.
    @inlinable @inline(__always)
    func covers(_ index: PageIndex) -> Bool {
        index &>> rootShift < 64  // rootShift ≤ 60; at 60 every index is covered
    }

    /// The shift of the lowest root that covers `index`.
    static func shift(covering index: PageIndex) -> UInt64 {
        var shift: UInt64 = 0
        while shift < Trie.topShift && index >> (shift + Trie.bitsPerLevel) != 0 { shift += Trie.bitsPerLevel }
        return shift
    }

    /// The page at `index`, or nil; setting nil removes it.
    ///
    /// - Complexity: O(log₆₄ n) to read; writing copies at most one path of nodes that other
    ///   values share (O(64 · height)), otherwise O(height) amortized.
    public subscript(index: PageIndex) -> Page? {
        get {
            guard let root, covers(index) else { return nil }
            var node = root
            var shift = rootShift
            while shift > 0 {
                let branch = unsafeDowncast(node, to: Branch.self)
                let digit = (index >> shift) & 63
                guard branch.bitmap & (1 << digit) != 0 else { return nil }
                node = branch.element(for: digit)
                shift -= Trie.bitsPerLevel
            }
            let leaf = unsafeDowncast(node, to: Leaf.self)
            guard leaf.bitmap & (1 << (index & 63)) != 0 else { return nil }
            return leaf.element(for: index & 63).page
        }
        set {
            if let newValue { updateValue(newValue, forIndex: index) } else { removeValue(forIndex: index) }
        }
    }

    /// Stores `page` at `index` and returns the page it replaced.
    ///
    /// - Complexity: as the subscript setter.
    @discardableResult
    public mutating func updateValue(_ page: consuming Page, forIndex index: PageIndex) -> Page? {
        defer { rootChanged() }
        guard root != nil else {
            rootShift = Self.shift(covering: index)
            root = Trie.path(to: index, shift: rootShift, page: page)
            return nil
        }
        while !covers(index) { raise() }
        return Trie.insert(page, at: index, into: &root!, shift: rootShift)
    }

    /// Records `root`'s new address.
    mutating func rootChanged() {
        rootAddress = root.map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) }
    }

    /// Adds one level above the root: the old root becomes digit 0 of the new one.
    mutating func raise() {
        root = Branch.single(root!, digit: 0, count: count, capacity: 2)
        rootShift += Trie.bitsPerLevel
        rootChanged()
    }

    /// Removes the page at `index` and returns it.
    ///
    /// - Complexity: O(log₆₄ n) plus copying shared nodes on the path.
    @discardableResult
    public mutating func removeValue(forIndex index: PageIndex) -> Page? {
        guard self[index] != nil else { return nil }
        defer { rootChanged() }
        let shift = rootShift
        let removed = Trie.withNode(&root!, shift: shift,
                                    leaf: { Self.remove(index, from: &$0) },
                                    branch: { Self.remove(index, from: &$0, shift: shift) })
        if Trie.count(of: root!, shift: rootShift) == 0 {
            root = nil
            rootShift = 0
        }
        return removed
    }

    /// Removes a present `index` from a leaf.
    private static func remove(_ index: PageIndex, from leaf: inout Leaf) -> Page {
        if !isKnownUniquelyReferenced(&leaf) { leaf = leaf.copy(extra: 0) }
        leaf.addToCount(-1)
        return leaf.remove(digit: index & 63).page
    }

    /// Removes a present `index` from the subtree; children left empty are dropped.
    private static func remove(_ index: PageIndex, from branch: inout Branch, shift: UInt64) -> Page {
        if !isKnownUniquelyReferenced(&branch) { branch = branch.copy(extra: 0) }
        let digit = (index >> shift) & 63
        let childShift = shift - Trie.bitsPerLevel
        branch.addToCount(-1)
        let removed = branch.withElement(for: digit) { child in
            Trie.withNode(&child, shift: childShift,
                          leaf: { remove(index, from: &$0) },
                          branch: { remove(index, from: &$0, shift: childShift) })
        }
        if Trie.count(of: branch.element(for: digit), shift: childShift) == 0 { _ = branch.remove(digit: digit) }
        return removed
    }

    /// The largest index present.
    ///
    /// - Complexity: O(log₆₄ n).
    public var lastIndex: PageIndex? {
        guard var node = root else { return nil }
        var shift = rootShift
        var index: PageIndex = 0
        while true {
            let bitmap = Trie.bitmap(of: node, shift: shift)
            index |= UInt64(63 - bitmap.leadingZeroBitCount) << shift
            if shift == 0 { return index }
            let branch = unsafeDowncast(node, to: Branch.self)
            node = branch.element(for: UInt64(63 - bitmap.leadingZeroBitCount))
            shift -= Trie.bitsPerLevel
        }
    }
}
