import SystemPackage

/// Consecutive pages of a memory whose bytes lie consecutively in one file: what a zero-copy mapping
/// maps with a single `mmap`.
public struct FileRun: Sendable, Hashable {
    /// The first page of the memory the run covers.
    public var firstPage: PageIndex
    /// Pages in the run.
    public var pageCount: UInt64
    /// The file holding the bytes; owned by a layer or allocator that outlives the mapping's use.
    public var descriptor: FileDescriptor
    /// Byte offset of the first page's bytes in the file (page aligned).
    public var offset: UInt64

    public init(firstPage: PageIndex, pageCount: UInt64, descriptor: FileDescriptor, offset: UInt64) {
        self.firstPage = firstPage
        self.pageCount = pageCount
        self.descriptor = descriptor
        self.offset = offset
    }

    /// Coalesces pages in ascending index order into runs.
    ///
    /// - Complexity: O(n).
    static func coalescing(_ pages: some Sequence<(index: PageIndex, page: Page)>) -> [FileRun] {
        var runs: [FileRun] = []
        for (index, page) in pages {
            let offset = page.location.offset
            let descriptor = page.allocator.descriptor
            if let last = runs.last, last.descriptor == descriptor, last.firstPage + last.pageCount == index,
               last.offset + last.pageCount * UInt64(Page.size) == offset {
                runs[runs.count - 1].pageCount += 1
            } else {
                runs.append(FileRun(firstPage: index, pageCount: 1, descriptor: descriptor, offset: offset))
            }
        }
        return runs
    }
}

extension PageDelta {
    /// The delta's pages as file runs, for mapping them zero-copy.
    ///
    /// - Complexity: O(n).
    public var fileRuns: [FileRun] { FileRun.coalescing(self) }

    /// The runs of the pages whose indices lie in `range`.
    ///
    /// - Complexity: O(log₆₄ n + pages in range).
    public func fileRuns(in range: Range<PageIndex>) -> [FileRun] { FileRun.coalescing(pages(in: range)) }
}
