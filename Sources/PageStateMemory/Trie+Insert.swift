extension Trie {
    /// Stores `page` at `index` in the subtree rooted at `root`, whose digit is at `shift`, and
    /// returns the page it replaced. `index` must be within the range `root` covers.
    ///
    /// One pass down, iterative, touching the nodes on the path through their addresses: following
    /// them as Swift references would retain and release each one (atomic read-modify-writes that
    /// also keep independent inserts from overlapping their cache misses). Every node on the path is
    /// made unique (copied when shared) and its count raised before descending, on the bet that
    /// `index` is new; a replacement takes the counts back down in a second pass over the same, now
    /// unique, nodes. `page` is moved into its leaf, never retained again.
    ///
    /// - Complexity: O(height) amortized, plus O(elements) for each shared node copied and for a
    ///   node that grows.
    static func insert(_ page: consuming Page, at index: PageIndex, into root: inout AnyObject, shift: UInt64) -> Page? {
        var pending = Optional(page)  // taken, not copied, inside the closure
        return withUnsafeMutablePointer(to: &root) { root in
            var slot = root
            var level = shift
            while level > 0 {
                let digit = (index >> level) & 63
                let branch = NodeAddress(uniqueIn: slot, as: Branch.self)
                branch.addToCount(1)
                guard branch.contains(digit) else {
                    let child = path(to: index, shift: level - bitsPerLevel, page: pending.take()!)
                    vacancy(for: digit, in: slot, as: Branch.self).initialize(to: child)
                    return nil
                }
                slot = branch.element(for: digit, as: AnyObject.self)
                level -= bitsPerLevel
            }
            let digit = index & 63
            let leaf = NodeAddress(uniqueIn: slot, as: Leaf.self)
            guard leaf.contains(digit) else {
                leaf.addToCount(1)
                vacancy(for: digit, in: slot, as: Leaf.self).initialize(to: LeafEntry(pending.take()!))
                return nil
            }
            let entry = leaf.element(for: digit, as: LeafEntry.self)
            let replaced = entry.move()
            entry.initialize(to: LeafEntry(pending.take()!))
            undoCounts(along: index, from: root, shift: shift)
            return replaced.page
        }
    }

    /// Marks `digit` present in the unique node in `slot` and returns its uninitialized element
    /// slot, moving the elements after it up (compressed) or first growing the node into a new one
    /// (full).
    ///
    /// - Complexity: O(elements) compressed, O(1) direct.
    @inline(__always)
    private static func vacancy<Element>(
        for digit: UInt64, in slot: UnsafeMutablePointer<AnyObject>, as kind: TrieNode<Element>.Type
    ) -> UnsafeMutablePointer<Element> {
        var node = NodeAddress(in: slot)
        let bitmap = node.bitmap
        if node.capacity != kind.directCapacity {  // a direct node always has room: no population count
            let n = bitmap.nonzeroBitCount
            if n == node.capacity {
                slot.initialize(to: kind.grown(from: unsafeDowncast(slot.move(), to: kind)))
                node = NodeAddress(in: slot)
            }
            if node.capacity != kind.directCapacity {
                node.bitmap = bitmap | 1 << digit
                let elements = node.elements(as: Element.self)
                let position = position(of: digit, in: bitmap)
                (elements + position + 1).moveInitialize(from: elements + position, count: n - position)
                return elements + position
            }
        }
        node.bitmap = bitmap | 1 << digit
        return node.elements(as: Element.self) + Int(digit)
    }

    /// Lowers by one the count of every branch on `index`'s path below `root`; the path's nodes are
    /// all present and unique.
    private static func undoCounts(along index: PageIndex, from root: UnsafeMutablePointer<AnyObject>, shift: UInt64) {
        var slot = root
        var level = shift
        while level > 0 {
            let branch = NodeAddress(in: slot)
            branch.addToCount(-1)
            slot = branch.element(for: (index >> level) & 63, as: AnyObject.self)
            level -= bitsPerLevel
        }
    }
}

/// A trie node seen through its address, so that reading and updating it touches no reference
/// count. Valid only while the slot it was read from keeps the node alive and in place.
private struct NodeAddress {
    let address: UnsafeMutableRawPointer

    /// The node held in `slot`.
    @inline(__always)
    init(in slot: UnsafeMutablePointer<AnyObject>) {
        address = UnsafeMutableRawPointer(slot).load(as: UnsafeMutableRawPointer.self)
    }

    /// The node held in `slot`, first replaced there by a copy with room for one more element when
    /// another value shares it.
    @inline(__always)
    init<Element>(uniqueIn slot: UnsafeMutablePointer<AnyObject>, as kind: TrieNode<Element>.Type) {
        // As the concrete class: the generic check on `AnyObject` is an outlined call.
        let isUnique = slot.withMemoryRebound(to: kind, capacity: 1) { isKnownUniquelyReferenced(&$0.pointee) }
        if !isUnique { slot.pointee = unsafeDowncast(slot.pointee, to: kind).copy(extra: 1) }
        self.init(in: slot)
    }

    var bitmap: UInt64 {
        @inline(__always) get { address.load(fromByteOffset: TrieLayout.offsets.bitmap, as: UInt64.self) }
        @inline(__always) nonmutating set { address.storeBytes(of: newValue, toByteOffset: TrieLayout.offsets.bitmap, as: UInt64.self) }
    }

    var capacity: Int {
        @inline(__always) get { address.load(fromByteOffset: TrieLayout.offsets.capacity, as: Int.self) }
    }

    @inline(__always)
    func contains(_ digit: UInt64) -> Bool { bitmap & (1 << digit) != 0 }

    @inline(__always)
    func addToCount(_ delta: Int) {
        let count = address.load(fromByteOffset: TrieLayout.offsets.count, as: Int.self)
        address.storeBytes(of: count + delta, toByteOffset: TrieLayout.offsets.count, as: Int.self)
    }

    /// The first element slot; `Element` must be the node's element type. Branches and leaves keep
    /// their elements at the same offset (checked by `rawLookupOffsetsMatchRealNodes`).
    @inline(__always)
    func elements<Element>(as _: Element.Type) -> UnsafeMutablePointer<Element> {
        (address + TrieLayout.offsets.children).assumingMemoryBound(to: Element.self)
    }

    /// The slot of a present `digit`'s element.
    @inline(__always)
    func element<Element>(for digit: UInt64, as type: Element.Type) -> UnsafeMutablePointer<Element> {
        let bitmap = bitmap
        let direct = capacity == TrieNode<Element>.directCapacity
        return elements(as: type) + (direct ? Int(digit) : Trie.position(of: digit, in: bitmap))
    }
}
