/// One immutable 4 KiB page in a `PageAllocator`'s backing file: a counted reference to a slot.
///
/// `@unchecked Sendable`: `address` points into a shared mapping that is only read.
///
/// Invariants: the bytes never change while any `Page` for the slot exists (they were fully written
/// before the page was published); the page keeps its allocator, and so the mapping, alive.
/// When the last owning `Page` of a slot goes away the slot is released for reuse and, in batches,
/// punched out of the file.
public final class Page: @unchecked Sendable {
    /// Bytes in a page.
    public static let size = 4096

    /// The allocator whose file holds the bytes.
    public let allocator: PageAllocator
    /// The page's first byte in the allocator's mapping of its chunk.
    @usableFromInline
    let address: UnsafeRawPointer
    let slot: UInt32
    /// Validation tag the slot carried when this page was created; travels with descriptions.
    let tag: UInt32

    init(allocator: PageAllocator, slot: UInt32, tag: UInt32) {
        self.allocator = allocator
        self.address = UnsafeRawPointer(allocator.address(ofSlot: slot))
        self.slot = slot
        self.tag = tag
    }

    /// Pages of an attached allocator are not counted: the owner process holds the references.
    deinit {
        if allocator.isOwner { allocator.release(slot: slot) }
    }

    /// Calls `body` with the page's 4,096 bytes, mapped from the backing file without copying.
    /// The buffer must not escape `body`.
    @inlinable
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(self) { () throws(E) -> R in try body(unsafeBytes) }
    }

    /// The page's bytes; valid only while `self` is alive.
    @usableFromInline
    var unsafeBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: address, count: Page.size)
    }

    /// The page's bytes as an array (a copy).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Where the page lives in the allocator's file, for handing it to another process.
    public var location: PageLocation.Place {
        PageLocation.Place(offset: AllocatorGeometry.fileOffset(ofSlot: UInt64(slot)), tag: tag)
    }
}
