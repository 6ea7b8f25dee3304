import HashTreeCollections
import PageStateMemory

/// The rejected PageDelta candidate, kept for side-by-side measurement: swift-collections'
/// persistent CHAMP `TreeDictionary`. Hash order means sorted iteration must sort.
struct TreeDictionaryDelta {
    var map = TreeDictionary<PageIndex, Page>()

    /// - Complexity: O(1).
    var count: Int { map.count }

    /// - Complexity: O(log n) expected.
    subscript(index: PageIndex) -> Page? {
        get { map[index] }
        set { map[index] = newValue }
    }

    /// Newer wins.
    ///
    /// - Complexity: O(m log(n + m)) for m newer entries.
    func union(_ newer: TreeDictionaryDelta) -> TreeDictionaryDelta {
        TreeDictionaryDelta(map: map.merging(newer.map) { _, newer in newer })
    }

    /// Pages in ascending index order.
    ///
    /// - Complexity: O(n log n).
    var sorted: [(key: PageIndex, value: Page)] { map.sorted { $0.key < $1.key } }
}
