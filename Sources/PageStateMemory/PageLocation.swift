/// A page of a memory as another process names it: the page index, and where its bytes are in the
/// allocator's file together with the validation tag the slot held when the page was described.
public struct PageLocation: Sendable, Hashable {
    /// Position of a page's bytes in an allocator file.
    public struct Place: Sendable, Hashable {
        /// Byte offset in the backing file; a multiple of 4 KiB.
        public var offset: UInt64
        /// The slot's validation tag; a mismatch means the slot was released or reused since.
        public var tag: UInt32
        public init(offset: UInt64, tag: UInt32) {
            self.offset = offset
            self.tag = tag
        }
    }

    public var index: PageIndex
    public var place: Place

    public init(index: PageIndex, place: Place) {
        self.index = index
        self.place = place
    }
}
