/// A read-only set of pages beneath a `PageMap`'s in-memory delta: a base file, an overlay file,
/// or a frozen delta. Layers are immutable, so a `PageMap` may share them freely.
public protocol PageLayer: Sendable {
    /// Pages the layer spans: indices at or beyond it are never present.
    var pageCount: UInt64 { get }

    /// The bytes of the page at `index` when the layer holds it, else nil. The buffer is 4,096 bytes
    /// and stays valid while the layer is alive.
    ///
    /// - Complexity: O(1) for dense files; O(log n) for sparse layers.
    func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer?

    /// Where the layer's pages lie in files, in ascending page order, for mapping them zero-copy.
    ///
    /// - Complexity: O(runs) for files; O(n) for sparse layers.
    var fileRuns: [FileRun] { get }

    /// The index ranges of the pages the layer holds, ascending.
    ///
    /// - Complexity: O(runs) for files; O(n) for sparse layers.
    var pageRanges: [Range<PageIndex>] { get }
}

extension PageLayer {
    /// Derived from `fileRuns`; layers that know their ranges without a descriptor override it.
    public var pageRanges: [Range<PageIndex>] { fileRuns.map { $0.firstPage..<($0.firstPage + $0.pageCount) } }
}

/// A frozen `PageDelta` used as a layer.
public struct DeltaLayer: PageLayer {
    public let delta: PageDelta

    public init(_ delta: PageDelta) { self.delta = delta }

    public var pageCount: UInt64 { delta.lastIndex.map { $0 + 1 } ?? 0 }

    /// - Complexity: O(log₆₄ n).
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer? {
        delta.bytes(ofPage: index)  // the page stays alive as long as the delta, hence the layer
    }

    public var fileRuns: [FileRun] { delta.fileRuns }
}
