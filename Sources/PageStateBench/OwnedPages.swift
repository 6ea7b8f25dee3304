import PageStateMemory

/// References to pages, each held once here and taken (moved out) exactly once, so that a timed
/// loop can hand pages over without the atomic increment copying from an array costs.
///
/// Invariant: every element is taken before `deallocate()`; taking one twice is undefined.
struct OwnedPages {
    private let references: UnsafeMutableBufferPointer<Page>

    /// Takes one more reference to each of `pages`.
    init(_ pages: [Page]) {
        references = .allocate(capacity: pages.count)
        _ = references.initialize(from: pages)
    }

    /// Moves out the reference at `position`.
    @inline(__always)
    func take(_ position: Int) -> Page { (references.baseAddress! + position).move() }

    /// Frees the storage; every reference must have been taken.
    func deallocate() { references.deallocate() }
}
