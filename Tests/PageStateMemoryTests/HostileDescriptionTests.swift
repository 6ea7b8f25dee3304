import PageState
import SystemPackage
import Testing

/// Received descriptions are untrusted: every malformed one must be a typed error, never a crash
/// or a silent zero page.
@Suite struct HostileDescriptionTests {
    let owner: PageAllocator
    let page: Page
    let attached: PageAllocator

    init() throws {
        owner = try PageAllocator()
        page = try owner.allocate(copying: [UInt8](repeating: 3, count: Page.size))
        let description = owner.describe()
        attached = try PageAllocator.attach(AllocatorDescription(
            descriptor: try description.descriptor.duplicate(), identity: UInt64.random(in: 1...UInt64.max),
            length: description.length))
    }

    @Test(arguments: [true, false])
    func rejectsBadOffsets(onOwner: Bool) throws {
        let allocator = onOwner ? owner : attached
        let length = owner.describe().length
        let place = page.location
        #expect(throws: PageAllocatorError.offsetOutOfRange(offset: length, length: length)) {
            try allocator.page(at: .init(offset: length, tag: place.tag))
        }
        #expect(throws: PageAllocatorError.offsetOutOfRange(offset: .max, length: length)) {
            try allocator.page(at: .init(offset: .max, tag: place.tag))
        }
        #expect(throws: PageAllocatorError.misalignedOffset(place.offset + 1)) {
            try allocator.page(at: .init(offset: place.offset + 1, tag: place.tag))
        }
        #expect(throws: PageAllocatorError.metadataOffset(0)) { try allocator.page(at: .init(offset: 0, tag: place.tag)) }
        let neverAllocated = place.offset + UInt64(Page.size)
        #expect(throws: PageAllocatorError.reclaimedPage(offset: neverAllocated)) {
            try allocator.page(at: .init(offset: neverAllocated, tag: 1))
        }
        #expect(throws: PageAllocatorError.stalePage(offset: place.offset, expectedTag: place.tag &+ 1, actualTag: place.tag)) {
            try allocator.page(at: .init(offset: place.offset, tag: place.tag &+ 1))
        }
    }

    @Test func rejectsReleasedAndReusedSlots() throws {
        let allocator = try PageAllocator(options: .init(reclaimBatchPages: 1))
        var page: Page? = try allocator.allocate(copying: [1])
        let place = page!.location
        page = nil
        #expect(throws: PageAllocatorError.reclaimedPage(offset: place.offset)) { try allocator.page(at: place) }
        let reuse = try allocator.allocate(copying: [2])
        #expect(reuse.location.offset == place.offset)
        #expect(throws: PageAllocatorError.stalePage(offset: place.offset, expectedTag: place.tag, actualTag: reuse.location.tag)) {
            try allocator.page(at: place)
        }
    }

    @Test func rejectsBadLengths() throws {
        let description = owner.describe()
        for length in [UInt64(1), description.length + 4096, description.length * 64] {
            let bad = AllocatorDescription(descriptor: try description.descriptor.duplicate(), identity: 7, length: length)
            #expect(throws: PageAllocatorError.self) { try PageAllocator.attach(bad) }
        }
    }

    @Test func rejectsUnsealedMemfd() throws {
        let unsealed = try FileDescriptor.memfd(name: "unsealed")
        try unsealed.resize(to: Int64(1025 * Page.size))
        #expect(throws: PageAllocatorError.unsealedMemfd) {
            try PageAllocator.attach(AllocatorDescription(descriptor: unsealed, identity: 9, length: UInt64(1025 * Page.size)))
        }
    }
}
