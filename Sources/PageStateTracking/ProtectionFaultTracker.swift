import CPageState
import Glibc
import PageStateKernel
import PageStateMemory
import SystemPackage

/// Learns which pages were written with `mprotect` and a SIGSEGV handler, where asynchronous
/// userfaultfd write protection is unavailable. Tracked pages are read-only; the first write to each
/// faults into the C handler (`fault_tracker.c`), which records the page and makes it writable.
/// Faults outside every tracked region go to the handler installed before, or kill the process as
/// they would have without PageState.
///
/// Every page can be recorded once per cycle (collect, rearm), so the record buffer holds one entry per page of the
/// reservation (8 bytes per 4 KiB) and never truncates the dirty set, also when the memory grows
/// during an execution. Faults on pages beyond the accessible size are not tracked writes: they
/// stay faults. Each first write costs a user-space fault and an
/// `mprotect` (several µs, see design/tracking.md); each written page splits the mapping until `rearm`
/// re-protects it, so `vm.max_map_count` bounds the pages one execution may write.
public final class ProtectionFaultTracker: DirtyPageTracker, @unchecked Sendable {
    private let address: UnsafeMutableRawPointer
    private var pages: UInt64
    private let records: UnsafeMutableBufferPointer<UInt64>
    private let region: Int32

    /// Starts tracking the first `pages` pages at `address` (page aligned, mapped readable and
    /// writable), which may grow to `capacity` pages.
    public init(address: UnsafeMutableRawPointer, pages: UInt64, capacity: UInt64) throws(TrackingError) {
        precondition(pages <= capacity)
        guard ps_fault_tracker_install() == 0 else { throw .system(.installHandler, Errno(rawValue: errno)) }
        self.address = address
        self.pages = pages
        records = .allocate(capacity: Int(max(capacity, 1)))
        region = ps_fault_tracker_add(address, Int(pages), records.baseAddress, records.count)
        guard region >= 0 else {
            records.deallocate()
            throw .system(.register, Errno(rawValue: errno))
        }
        try protect(0..<pages)
    }

    /// Stops recording. The pages keep their protection: the tracker cannot know the range is still
    /// mapped (it may already be unmapped and reused), so the mapping's owner decides what to do with it.
    deinit {
        ps_fault_tracker_remove(region)
        records.deallocate()
    }

    /// Makes `pages` read-only so their next write is recorded; extends the tracked size when needed.
    ///
    /// - Complexity: one `mprotect`.
    public func protect(_ range: Range<PageIndex>) throws(TrackingError) {
        guard !range.isEmpty else { return }
        precondition(range.upperBound <= UInt64(records.count), "beyond the tracker's capacity")
        do {
            try protectMemory(address + Int(range.lowerBound) * Page.size, length: range.count * Page.size, .read)
        } catch { throw .system(.writeProtect, error) }
        if range.upperBound > pages {
            pages = range.upperBound
            ps_fault_tracker_resize(region, Int(pages))  // after protecting: the new pages fault from now on
        }
    }

    /// The pages recorded since they were last armed; they stay writable until `rearm`.
    ///
    /// - Complexity: O(d log d) for d pages written.
    public func collect(faultsAfterLastWrite _: UInt64?) throws(TrackingError) -> DirtyPages {
        let recorded = min(Int(ps_fault_tracker_take(region)), records.count)
        var indices = Array(records.prefix(recorded))
        indices.sort()
        var dirty = DirtyPages()
        for index in indices where dirty.runs.last.map({ !$0.contains(index) }) ?? true {
            dirty.append(index..<(index + 1))  // threads racing on one page record it twice: skipped here
        }
        return dirty
    }

    /// Makes `pages` read-only again (their writes were collected or are PageState's own).
    ///
    /// - Complexity: one `mprotect` per run.
    public func rearm(_ pages: DirtyPages) throws(TrackingError) {
        _ = ps_fault_tracker_take(region)
        for run in pages.runs { try protect(run) }
    }
}
