/// A node of a `RecencyList`: the list threads its links through the nodes themselves, so that
/// touching or removing one neither hashes nor allocates. Implementations declare both links
/// `unowned(unsafe)`: whoever lists the nodes keeps them alive (the list holds only its two ends),
/// there are no reference cycles, and following a link costs no reference counting (safe `unowned`
/// links made a check-out and check-in ~100 ns slower than a dictionary of links).
/// A node belongs to at most one list, and only the list changes its links.
protocol RecencyListNode: AnyObject {
    /// The node touched just before this one; nil for the oldest and for a node not listed.
    var older: Self? { get set }
    /// The node touched just after this one; nil for the newest and for a node not listed.
    var newer: Self? { get set }
}

/// Nodes in the order they were last touched, oldest first: a doubly linked list through the nodes,
/// so that touching, removing and finding the oldest cost O(1) and no hashing however many nodes
/// there are. The sandbox pool keeps its idle workers' slots in one, least recently used first.
///
/// Invariants: `oldest` and `newest` are nil exactly when the list is empty; following `newer` from
/// `oldest` visits every listed node once and ends at `newest`; `older` links mirror `newer` links;
/// a node that is not listed has both links nil. Every listed node must be kept alive elsewhere
/// until it is removed (its neighbours' links to it are not counted references). A value type over
/// shared nodes: use one list in place, never a copy of it.
struct RecencyList<Node: RecencyListNode> {
    /// The node touched longest ago.
    private(set) var oldest: Node?
    /// The node touched most recently.
    private(set) var newest: Node?
    private(set) var count = 0

    /// Whether `node` is in this list (it is in no other).
    ///
    /// - Complexity: O(1).
    func contains(_ node: Node) -> Bool { node.older != nil || node.newer != nil || oldest === node }

    /// Makes `node` the newest, inserting it if absent.
    ///
    /// - Complexity: O(1).
    mutating func touch(_ node: Node) {
        guard newest !== node else { return }
        remove(node)
        node.older = newest
        if let newest { newest.newer = node } else { oldest = node }
        newest = node
        count += 1
    }

    /// Removes `node` if listed.
    ///
    /// - Complexity: O(1).
    mutating func remove(_ node: Node) {
        guard contains(node) else { return }
        if let older = node.older { older.newer = node.newer } else { oldest = node.newer }
        if let newer = node.newer { newer.older = node.older } else { newest = node.older }
        node.older = nil
        node.newer = nil
        count -= 1
    }

    /// Every node, oldest first.
    ///
    /// - Complexity: O(count).
    var fromOldest: [Node] {
        var nodes: [Node] = []
        nodes.reserveCapacity(count)
        var next = oldest
        while let node = next {
            nodes.append(node)
            next = node.newer
        }
        return nodes
    }
}
