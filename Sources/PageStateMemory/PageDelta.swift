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
    var root: TrieNode?
    /// Shift of the root's digit: the trie covers indices below 2^(rootShift + 6).
    var rootShift: UInt64 = 0

    /// An empty delta.
    public init() {}

    /// The number of pages.
    ///
    /// - Complexity: O(1).
    public var count: Int { root?.count ?? 0 }

    /// Whether the delta holds no pages.
    ///
    /// - Complexity: O(1).
    public var isEmpty: Bool { root == nil }

    /// Whether `index` is below the range the root covers.
    @inline(__always)
    func covers(_ index: PageIndex) -> Bool {
        rootShift == TrieNode.topShift || index >> (rootShift + TrieNode.bitsPerLevel) == 0
    }

    /// The shift of the lowest root that covers `index`.
    private static func shift(covering index: PageIndex) -> UInt64 {
        var shift: UInt64 = 0
        while shift < TrieNode.topShift && index >> (shift + TrieNode.bitsPerLevel) != 0 { shift += TrieNode.bitsPerLevel }
        return shift
    }

    /// The page at `index`, or nil; setting nil removes it.
    ///
    /// - Complexity: O(log₆₄ n) to read; writing copies at most one path of nodes that other
    ///   values share (O(64 · height)), otherwise O(height) amortized.
    public subscript(index: PageIndex) -> Page? {
        get {
            guard var node = root, covers(index) else { return nil }
            var shift = rootShift
            while true {
                let digit = (index >> shift) & 63
                let bitmap = node.bitmap
                guard bitmap & (1 << digit) != 0 else { return nil }
                let element = node.element(at: TrieNode.position(of: digit, in: bitmap))
                if shift == 0 { return unsafeDowncast(element, to: Page.self) }
                node = unsafeDowncast(element, to: TrieNode.self)
                shift -= TrieNode.bitsPerLevel
            }
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
            root = TrieNode.path(to: index, shift: rootShift, page: page)
            return nil
        }
        root = nil  // leave `node` as the only reference when the delta owned it alone
        while !covers(index) { raise(&node) }
        let replaced = Self.insert(page, at: index, into: &node, shift: rootShift)
        root = node
        return replaced
    }

    /// Adds one level above the root: the old root becomes digit 0 of the new one.
    mutating func raise(_ node: inout TrieNode) {
        let parent = TrieNode.make(capacity: 2)
        let count = node.count
        parent.withUnsafeMutablePointers { header, elements in
            header.pointee.bitmap = 1
            header.pointee.count = count
            elements.initialize(to: node)
        }
        node = parent
        rootShift += TrieNode.bitsPerLevel
    }

    private static func insert(_ page: Page, at index: PageIndex, into node: inout TrieNode, shift: UInt64) -> Page? {
        if !isKnownUniquelyReferenced(&node) { node = node.copy(extra: 1) }
        let digit = (index >> shift) & 63
        let bitmap = node.bitmap
        guard bitmap & (1 << digit) != 0 else {
            let element: AnyObject = shift == 0 ? page : TrieNode.path(to: index, shift: shift - TrieNode.bitsPerLevel, page: page)
            TrieNode.insert(element, digit: digit, into: &node)
            node.header.count += 1
            return nil
        }
        let position = TrieNode.position(of: digit, in: bitmap)
        return node.withUnsafeMutablePointers { header, elements in
            if shift == 0 {
                let old = (elements + position).move()
                (elements + position).initialize(to: page)
                return unsafeDowncast(old, to: Page.self)
            }
            var child = unsafeDowncast((elements + position).move(), to: TrieNode.self)
            let replaced = insert(page, at: index, into: &child, shift: shift - TrieNode.bitsPerLevel)
            (elements + position).initialize(to: child)
            if replaced == nil { header.pointee.count += 1 }
            return replaced
        }
    }

    /// Removes the page at `index` and returns it.
    ///
    /// - Complexity: O(log₆₄ n) plus copying shared nodes on the path.
    @discardableResult
    public mutating func removeValue(forIndex index: PageIndex) -> Page? {
        guard self[index] != nil, var node = root else { return nil }
        root = nil
        let removed = Self.remove(index, from: &node, shift: rootShift)
        if node.count > 0 { root = node } else { rootShift = 0 }
        return removed
    }

    /// Removes a present `index` from the subtree; empty children are dropped.
    private static func remove(_ index: PageIndex, from node: inout TrieNode, shift: UInt64) -> Page {
        if !isKnownUniquelyReferenced(&node) { node = node.copy(extra: 0) }
        let digit = (index >> shift) & 63
        node.header.count -= 1
        if shift == 0 { return unsafeDowncast(node.remove(digit: digit), to: Page.self) }
        let position = TrieNode.position(of: digit, in: node.bitmap)
        let removed = node.withUnsafeMutablePointerToElements { elements in
            var child = unsafeDowncast((elements + position).move(), to: TrieNode.self)
            let removed = remove(index, from: &child, shift: shift - TrieNode.bitsPerLevel)
            (elements + position).initialize(to: child)
            return removed
        }
        if unsafeDowncast(node.element(at: position), to: TrieNode.self).count == 0 { _ = node.remove(digit: digit) }
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
            let digit = UInt64(63 - node.bitmap.leadingZeroBitCount)
            index |= digit << shift
            if shift == 0 { return index }
            node = unsafeDowncast(node.element(at: node.bitmap.nonzeroBitCount - 1), to: TrieNode.self)
            shift -= TrieNode.bitsPerLevel
        }
    }
}

