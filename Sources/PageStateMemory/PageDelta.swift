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
    /// A `Leaf` when `rootShift` is 0, a `Branch` above.
    var root: AnyObject? {
        didSet { rootAddress = root.map { UnsafeRawPointer(Unmanaged.passUnretained($0).toOpaque()) } }
    }
    /// `root`'s address, unretained, for lookups that must not touch reference counts.
    private(set) var rootAddress: UnsafeRawPointer?
    /// Shift of the root's digit: the trie covers indices below 2^(rootShift + 6).
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
    @inline(__always)
    func covers(_ index: PageIndex) -> Bool {
        rootShift == Trie.topShift || index >> (rootShift + Trie.bitsPerLevel) == 0
    }

    /// The shift of the lowest root that covers `index`.
    private static func shift(covering index: PageIndex) -> UInt64 {
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
    public mutating func updateValue(_ page: Page, forIndex index: PageIndex) -> Page? {
        guard var node = root else {
            rootShift = Self.shift(covering: index)
            root = Trie.path(to: index, shift: rootShift, page: page)
            return nil
        }
        root = nil  // leave `node` as the only reference when the delta owned it alone
        while !covers(index) { raise(&node) }
        let replaced = Self.insert(page, at: index, into: &node, shift: rootShift)
        root = node
        return replaced
    }

    /// Adds one level above the root: the old root becomes digit 0 of the new one.
    mutating func raise(_ node: inout AnyObject) {
        node = Branch.single(node, digit: 0, count: Trie.count(of: node, shift: rootShift), capacity: 2)
        rootShift += Trie.bitsPerLevel
    }

    private static func insert(_ page: Page, at index: PageIndex, into node: inout AnyObject, shift: UInt64) -> Page? {
        let digit = (index >> shift) & 63
        guard shift > 0 else {
            var leaf = unsafeDowncast(node, to: Leaf.self)
            node = Self.placeholder  // drop the extra reference so `leaf` can be unique
            if !isKnownUniquelyReferenced(&leaf) { leaf = leaf.copy(extra: 1) }
            defer { node = leaf }
            guard leaf.bitmap & (1 << digit) != 0 else {
                Leaf.insert(LeafEntry(page), digit: digit, into: &leaf)
                leaf.header.count += 1
                return nil
            }
            return leaf.update(digit: digit) { entry in
                defer { entry = LeafEntry(page) }
                return entry.page
            }
        }
        var branch = unsafeDowncast(node, to: Branch.self)
        node = Self.placeholder
        if !isKnownUniquelyReferenced(&branch) { branch = branch.copy(extra: 1) }
        defer { node = branch }
        guard branch.bitmap & (1 << digit) != 0 else {
            Branch.insert(Trie.path(to: index, shift: shift - Trie.bitsPerLevel, page: page), digit: digit, into: &branch)
            branch.header.count += 1
            return nil
        }
        let replaced = branch.update(digit: digit) { child in
            insert(page, at: index, into: &child, shift: shift - Trie.bitsPerLevel)
        }
        if replaced == nil { branch.header.count += 1 }
        return replaced
    }

    /// Stands in for a node while it is being mutated, so the node itself is uniquely referenced.
    /// Never read or mutated, only stored and overwritten, so sharing it across threads is safe.
    nonisolated(unsafe) private static let placeholder: AnyObject = Leaf.make(capacity: 0)

    /// Removes the page at `index` and returns it.
    ///
    /// - Complexity: O(log₆₄ n) plus copying shared nodes on the path.
    @discardableResult
    public mutating func removeValue(forIndex index: PageIndex) -> Page? {
        guard self[index] != nil, var node = root else { return nil }
        root = nil
        let removed = Self.remove(index, from: &node, shift: rootShift)
        if Trie.count(of: node, shift: rootShift) > 0 { root = node } else { rootShift = 0 }
        return removed
    }

    /// Removes a present `index` from the subtree; empty children are dropped.
    private static func remove(_ index: PageIndex, from node: inout AnyObject, shift: UInt64) -> Page {
        let digit = (index >> shift) & 63
        guard shift > 0 else {
            var leaf = unsafeDowncast(node, to: Leaf.self)
            node = placeholder
            if !isKnownUniquelyReferenced(&leaf) { leaf = leaf.copy(extra: 0) }
            defer { node = leaf }
            leaf.header.count -= 1
            return leaf.remove(digit: digit).page
        }
        var branch = unsafeDowncast(node, to: Branch.self)
        node = placeholder
        if !isKnownUniquelyReferenced(&branch) { branch = branch.copy(extra: 0) }
        defer { node = branch }
        branch.header.count -= 1
        let removed = branch.update(digit: digit) { child in remove(index, from: &child, shift: shift - Trie.bitsPerLevel) }
        if Trie.count(of: branch.element(for: digit), shift: shift - Trie.bitsPerLevel) == 0 { _ = branch.remove(digit: digit) }
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
            node = branch.element(at: bitmap.nonzeroBitCount - 1)
            shift -= Trie.bitsPerLevel
        }
    }
}
