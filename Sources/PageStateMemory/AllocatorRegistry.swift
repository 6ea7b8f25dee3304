import Synchronization
import SystemPackage

/// The allocators present in this process by identity, so that attaching an identity twice yields
/// the same allocator (and so the same mappings).
enum AllocatorRegistry {
    private struct WeakAllocator { weak var allocator: PageAllocator? }
    private static let entries = Mutex<[UInt64: WeakAllocator]>([:])

    static func register(_ allocator: PageAllocator) {
        entries.withLock { $0[allocator.identity] = WeakAllocator(allocator: allocator) }
    }

    /// Removes `identity` unless a live allocator (a newer attachment) holds it.
    static func unregister(identity: UInt64) {
        entries.withLock { entries in
            if entries[identity]?.allocator == nil { entries[identity] = nil }
        }
    }

    static func attach(_ description: AllocatorDescription) throws(PageAllocatorError) -> PageAllocator {
        do {
            try PageAllocator.validate(description)
        } catch {
            try? description.descriptor.close()
            throw error
        }
        let (allocator, isNew) = entries.withLock { entries in
            if let existing = entries[description.identity]?.allocator { return (existing, false) }
            let attached = PageAllocator(descriptor: description.descriptor, identity: description.identity,
                                         isOwner: false, attachedLength: description.length, reclaimBatchPages: 1,
                                         reservedReleasedPages: 0)
            entries[description.identity] = WeakAllocator(allocator: attached)
            return (attached, true)
        }
        if !isNew {
            if allocator.descriptor != description.descriptor { try? description.descriptor.close() }
            if !allocator.isOwner { allocator.extendAttachedLength(to: description.length) }
        }
        return allocator
    }
}
