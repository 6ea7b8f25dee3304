/// Keys in the order they were last touched, oldest first: a doubly linked list threaded through a
/// dictionary, so that touching, removing and finding the oldest cost O(1) however many keys there
/// are. The sandbox pool keeps its idle workers in one, least recently used first.
///
/// Invariants: `oldest` and `newest` are nil exactly when the order is empty; following `newer`
/// from `oldest` visits every key once and ends at `newest`; `older` links mirror `newer` links.
struct RecencyOrder<Key: Hashable> {
    private struct Links {
        var older: Key?
        var newer: Key?
    }

    private var links: [Key: Links] = [:]
    /// The key touched longest ago.
    private(set) var oldest: Key?
    private var newest: Key?

    var count: Int { links.count }

    /// Makes `key` the newest, inserting it if absent.
    ///
    /// - Complexity: O(1) amortized.
    mutating func touch(_ key: Key) {
        remove(key)
        links[key] = Links(older: newest, newer: nil)
        if let newest { links[newest]!.newer = key } else { oldest = key }
        newest = key
    }

    /// Removes `key` if present.
    ///
    /// - Complexity: O(1).
    mutating func remove(_ key: Key) {
        guard let removed = links.removeValue(forKey: key) else { return }
        if let older = removed.older { links[older]!.newer = removed.newer } else { oldest = removed.newer }
        if let newer = removed.newer { links[newer]!.older = removed.older } else { newest = removed.older }
    }

    /// Every key, oldest first.
    ///
    /// - Complexity: O(count).
    var fromOldest: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(count)
        var next = oldest
        while let key = next {
            keys.append(key)
            next = links[key]!.newer
        }
        return keys
    }
}
