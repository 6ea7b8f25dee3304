import PageStateKernel
import PageStateMemory
import Synchronization
import SystemPackage

/// Learns which pages of a mapped memory were written, with asynchronous userfaultfd write
/// protection (Linux 6.7+): the kernel resolves each first write to a protected page itself and
/// records it, so no fault reaches user space. `collect()` lists the written pages with one
/// `PAGEMAP_SCAN` walk and `rearm(_:)` re-protects them with another (`PM_SCAN_WP_MATCHING`); both
/// resume when the result buffer fills, so the dirty set is never truncated.
///
/// Registration is per mapping: pages remapped over (`mmap MAP_FIXED`) lose it and must be passed
/// to `protect(_:)` again.
///
/// A collect that finds the process (or, with `faultScope: .callingThread`, the thread) has taken
/// no page fault since every tracked page was last armed returns at once, without walking: a write
/// to an armed page is resolved as a fault of the thread that made it (or of the thread whose system
/// call wrote on its behalf), so no fault means no write. Any fault — a read of a new page, another
/// thread's allocation — only costs the walk.
public final class AsyncWriteProtectTracker: DirtyPageTracker, @unchecked Sendable {
    private let userfaultfd: FileDescriptor
    private let pagemap: FileDescriptor
    private let address: UnsafeMutableRawPointer
    private var trackedPages: UInt64
    private let regions: UnsafeMutableBufferPointer<PageRegion>
    /// The page-fault count when every tracked page was last known armed: at setup, at a `rearm`,
    /// at a `collect()` that found nothing. Nil once a fault may have been a write that no walk has
    /// seen yet, and while written pages are left writable (from a `collect()` that found some to
    /// the `rearm`).
    private var faultsWhenArmed: UInt64?
    private let faultScope: PageFaultScope
    /// Collects answered without a walk.
    public private(set) var walksSkipped = 0

    /// Starts tracking the first `pages` pages at `address` (page aligned): registers and
    /// write-protects them. `scanBufferRegions` bounds one scan's result; more dirty runs resume it.
    /// `faultScope` is whose page faults tell whether a walk can be skipped: `.callingThread` only
    /// when no other thread ever touches the memory (a single-threaded process).
    ///
    /// - Throws: `TrackingError.unavailable` when the kernel lacks async write protection.
    public init(address: UnsafeMutableRawPointer, pages: UInt64, scanBufferRegions: Int = 4096,
                faultScope: PageFaultScope = .process) throws(TrackingError) {
        self.address = address
        self.faultScope = faultScope
        trackedPages = 0
        userfaultfd = try Self.sharedUserfaultfd()
        do throws(Errno) { pagemap = try Self.sharedPagemap.get() } catch { throw .system(.openPagemap, error) }
        regions = .allocate(capacity: max(1, scanBufferRegions))
        faultsWhenArmed = try faults()  // nothing is armed yet; no write before this counts
        try protect(0..<pages)
    }

    /// Leaves the pages registered and protected (the shared context is never closed): later
    /// writes to them are resolved by the kernel, once per page, and a new tracker re-arms them.
    deinit {
        regions.deallocate()
    }

    /// `/proc/self/pagemap`, opened once per process and never closed: every tracker scans through
    /// it, and a confined process (a sandbox worker) can no longer open files.
    private static let sharedPagemap = Result { () throws(Errno) in
        do { return try FileDescriptor.open("/proc/self/pagemap", .readOnly, options: .closeOnExec) } catch {
            throw error as? Errno ?? .ioError
        }
    }

    /// The process's one userfaultfd context, opened with its features negotiated by the first
    /// tracker and never closed; every tracker registers its pages with it. Not one per tracker: a
    /// closed context lives on while a child forked meanwhile by another thread still holds a copy of
    /// its descriptor (until that child execs), and until then the kernel refuses to register its
    /// pages with any other context (`EBUSY`); registering them again with the same context is
    /// allowed. A failed open is not remembered: the next tracker tries again.
    private static let userfaultfdContext = Mutex<FileDescriptor?>(nil)

    private static func sharedUserfaultfd() throws(TrackingError) -> FileDescriptor {
        try userfaultfdContext.withLock { (context: inout FileDescriptor?) throws(TrackingError) -> FileDescriptor in
            if let context { return context }
            let opened = try openUserfaultfd()
            context = opened
            return opened
        }
    }

    /// Opens and sets up what trackers need now, before the process gives up opening files and
    /// creating userfaultfds (a sandbox worker's filter allows neither).
    public static func prepareForConfinement() throws(TrackingError) {
        _ = try sharedUserfaultfd()
        do throws(Errno) { _ = try sharedPagemap.get() } catch { throw .system(.openPagemap, error) }
    }

    private static func openUserfaultfd() throws(TrackingError) -> FileDescriptor {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.userfaultfd(flags: [.closeOnExec, .nonBlocking])
        } catch .notPermitted {
            // Unprivileged with vm.unprivileged_userfaultfd = 0: user-mode faults are all we need.
            do { fd = try FileDescriptor.userfaultfd(flags: [.closeOnExec, .nonBlocking, .userModeOnly]) } catch {
                throw .system(.openUserfaultfd, error)
            }
        } catch {
            throw error == .noFunction ? .unavailable("no userfaultfd in this kernel") : .system(.openUserfaultfd, error)
        }
        do {
            _ = try fd.uffdAPI(features: [.writeProtectAsync, .writeProtectUnpopulated])
        } catch {
            try? fd.close()
            throw error == .invalidArgument
                ? .unavailable("userfaultfd lacks WP_ASYNC or WP_UNPOPULATED (Linux 6.7+)")
                : .system(.negotiateFeatures, error)
        }
        return fd
    }

    /// Registers and write-protects `pages` (after growth or after they were remapped).
    ///
    /// - Complexity: O(pages) in the kernel (page-table walk); no per-page system calls.
    public func protect(_ pages: Range<PageIndex>) throws(TrackingError) {
        guard !pages.isEmpty else { return }
        let faults = try faults()
        let start = address + Int(pages.lowerBound) * Page.size
        let length = pages.count * Page.size
        do { try userfaultfd.uffdRegister(start, length: length, mode: .writeProtect) } catch {
            throw .system(.register, error)
        }
        do { try userfaultfd.uffdWriteProtect(start, length: length) } catch { throw .system(.writeProtect, error) }
        trackedPages = max(trackedPages, pages.upperBound)
        // Newly armed pages add nothing to know; a fault since the snapshot may be a write to others.
        if faults != faultsWhenArmed { faultsWhenArmed = nil }
    }

    /// The pages written since they were last armed, without re-protecting them.
    ///
    /// - Complexity: O(dirty runs) plus the kernel's walk of the tracked page tables.
    public func collect(faultsAfterLastWrite: UInt64?) throws(TrackingError) -> DirtyPages {
        let faults: UInt64
        if let faultsAfterLastWrite { faults = faultsAfterLastWrite } else { faults = try self.faults() }
        if faults == faultsWhenArmed {
            walksSkipped += 1
            return DirtyPages()
        }
        let dirty = try scan(reprotect: false)
        faultsWhenArmed = dirty.count == 0 ? faults : nil
        return dirty
    }

    /// Re-protects every written page (`pages` and any other) in one walk.
    public func rearm(_ pages: DirtyPages) throws(TrackingError) {
        let faults = try faults()
        _ = try scan(reprotect: true)
        faultsWhenArmed = faults
    }

    private func faults() throws(TrackingError) -> UInt64 {
        do { return try pageFaults(of: faultScope) } catch { throw .system(.countFaults, error) }
    }

    private func scan(reprotect: Bool) throws(TrackingError) -> DirtyPages {
        var dirty = DirtyPages()
        let begin = UInt(bitPattern: address)
        let end = begin + UInt(trackedPages) * UInt(Page.size)
        let flags: PagemapScanFlags = reprotect ? [.writeProtectMatching, .checkWriteProtectAsync] : [.checkWriteProtectAsync]
        var cursor = begin
        while cursor < end {
            let scan: (count: Int, walkEnd: UInt64)
            do {
                scan = try pagemap.pagemapScan(UnsafeRawPointer(bitPattern: cursor)!, length: Int(end - cursor),
                                               categories: .written, flags: flags, into: regions)
            } catch { throw .system(.scan, error) }
            for region in regions.prefix(scan.count) {
                dirty.append(PageIndex((UInt(region.start) - begin) / UInt(Page.size))..<PageIndex((UInt(region.end) - begin) / UInt(Page.size)))
            }
            // A full buffer stops the walk early; resume after both `walk_end` and the last region
            // returned: when the regions exactly fill the buffer, Linux 6.18 reports a stale
            // `walk_end` below regions it already returned (seen: 14344 with regions up to 16382).
            let lastEnd = scan.count > 0 ? UInt(regions[scan.count - 1].end) : cursor + UInt(Page.size)
            cursor = scan.count < regions.count ? end : max(UInt(scan.walkEnd), lastEnd)
        }
        return dirty
    }
}
