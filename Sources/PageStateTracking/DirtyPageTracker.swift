import PageStateKernel
import PageStateMemory

/// Learns which pages of a mapped range were written.
///
/// A cycle: `collect()` reports the pages written since they were last armed and leaves them
/// writable, so a commit can copy them out and a rollback can copy old bytes in without faulting;
/// `rearm(_:)` then forgets those writes and protects the pages again.
public protocol DirtyPageTracker: AnyObject, Sendable {
    /// Arms tracking for `pages` (at start, after growth, or after they were remapped).
    func protect(_ pages: Range<PageIndex>) throws(TrackingError)
    /// The pages written since they were last armed; they stay writable until `rearm`.
    /// `faultsAfterLastWrite`, when given, is `pageFaults(of:)` in the tracker's scope read at some
    /// moment after the memory's last write; a tracker that decides by fault counts uses it instead
    /// of reading its own (one reading can then serve several memories). A count read before a
    /// write could hide that write: pass nil unless nothing can have written since.
    func collect(faultsAfterLastWrite: UInt64?) throws(TrackingError) -> DirtyPages
    /// Forgets all writes to `pages` (including PageState's own restoring copies) and protects them again.
    func rearm(_ pages: DirtyPages) throws(TrackingError)
}

extension DirtyPageTracker {
    /// The pages written since they were last armed; they stay writable until `rearm`.
    public func collect() throws(TrackingError) -> DirtyPages { try collect(faultsAfterLastWrite: nil) }
}

/// The mechanisms that can track writes.
public enum TrackerKind: String, Sendable, CaseIterable {
    /// Asynchronous userfaultfd write protection + PAGEMAP_SCAN (Linux 6.7+): no user-space faults.
    case asyncWriteProtect
    /// mprotect + a SIGSEGV handler: one user-space fault per page first written; any Linux.
    case protectionFaults

    /// The best mechanism this machine offers (probed once per process).
    public static let best: TrackerKind = KernelFeatures.probe().asyncWriteTracking ? .asyncWriteProtect : .protectionFaults

    /// The mechanisms this machine offers, best first.
    public static var available: [TrackerKind] { best == .asyncWriteProtect ? allCases : [.protectionFaults] }

    /// A tracker of this kind over `pages` pages at `address`, which may grow to `capacity`
    /// (`faultScope`: see `AsyncWriteProtectTracker.init`).
    func makeTracker(address: UnsafeMutableRawPointer, pages: UInt64, capacity: UInt64,
                     faultScope: PageFaultScope) throws(TrackingError) -> any DirtyPageTracker {
        switch self {
        case .asyncWriteProtect: try AsyncWriteProtectTracker(address: address, pages: pages, faultScope: faultScope)
        case .protectionFaults: try ProtectionFaultTracker(address: address, pages: pages, capacity: capacity)
        }
    }
}
