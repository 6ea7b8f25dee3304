import PageStateKernel
import SystemPackage

/// A read-only layer made of file runs received from another process (a worker receives its guest's
/// base and overlay layers this way): each run is mapped read-only and shared, and the layer owns the
/// descriptors it was given.
///
/// Invariants: `runs` are sorted by `firstPage` and do not overlap; `bases[i]` maps `runs[i]` for the
/// layer's lifetime.
public final class MappedRunsLayer: PageLayer, @unchecked Sendable {
    public let fileRuns: [FileRun]
    public let pageCount: UInt64
    private let bases: [UnsafeMutableRawPointer]

    /// Maps `runs` (sorted, non-overlapping, page-aligned offsets). Takes ownership of every distinct
    /// descriptor in `runs`, also when mapping fails.
    ///
    /// - Throws: `Errno.invalidArgument` for unsorted or overlapping runs, or the `mmap` error.
    /// - Complexity: O(runs): one `mmap` each.
    public init(runs: [FileRun]) throws(Errno) {
        let descriptors = Set(runs.map(\.descriptor.rawValue))
        var bases: [UnsafeMutableRawPointer] = []
        do {
            for (i, run) in runs.enumerated() {
                guard run.pageCount > 0, run.offset % UInt64(Page.size) == 0,
                      i == 0 || runs[i - 1].firstPage + runs[i - 1].pageCount <= run.firstPage else {
                    throw Errno.invalidArgument
                }
                bases.append(try mapMemory(length: Int(run.pageCount) * Page.size, protection: .read, flags: .shared,
                                           descriptor: run.descriptor, offset: run.offset))
            }
        } catch {
            for (base, run) in zip(bases, runs) { try? unmapMemory(base, length: Int(run.pageCount) * Page.size) }
            for descriptor in descriptors { try? FileDescriptor(rawValue: descriptor).close() }
            throw error as? Errno ?? .invalidArgument
        }
        self.fileRuns = runs
        self.bases = bases
        pageCount = runs.last.map { $0.firstPage + $0.pageCount } ?? 0
    }

    deinit {
        for (base, run) in zip(bases, fileRuns) { try? unmapMemory(base, length: Int(run.pageCount) * Page.size) }
        for descriptor in Set(fileRuns.map(\.descriptor.rawValue)) { try? FileDescriptor(rawValue: descriptor).close() }
    }

    /// - Complexity: O(log runs).
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer? {
        var low = 0, high = fileRuns.count
        while low < high {
            let middle = (low + high) / 2
            if fileRuns[middle].firstPage + fileRuns[middle].pageCount <= index { low = middle + 1 } else { high = middle }
        }
        guard low < fileRuns.count, fileRuns[low].firstPage <= index else { return nil }
        return UnsafeRawBufferPointer(start: bases[low] + Int(index - fileRuns[low].firstPage) * Page.size, count: Page.size)
    }
}
