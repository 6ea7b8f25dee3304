import PageStateKernel
import Synchronization
import SystemPackage

/// Where deinitialized allocators leave their mappings and descriptor, for the queue's owner to
/// unmap and close when it suits it — a sandbox worker does it while idle. Letting go of a dead
/// 4,096-page result file (unmapping the pages faulted in, closing the last descriptor, which frees
/// the file's memory) takes ~3 ms on the machines measured; done right away, it would delay the
/// worker's next execution. Allocators only use a queue they were given (`importSealed`).
///
/// Until released, a file's memory stays allocated and its descriptor open: callers bound `count`.
/// Whatever is left is released when the queue is deinitialized.
public final class DeferredRelease: Sendable {
    /// One allocator's leftovers: its chunk mappings (address, length) and its backing file.
    private struct Leftovers: Sendable {
        var mappings: [(address: UInt, length: Int)]
        var descriptor: FileDescriptor
    }

    private let pending = Mutex<[Leftovers]>([])

    public init() {}

    /// Allocators whose leftovers wait to be released.
    public var count: Int { pending.withLock { $0.count } }

    /// Queues an allocator's mappings and descriptor (called from its `deinit`).
    func append(mappings: [(address: UInt, length: Int)], descriptor: FileDescriptor) {
        pending.withLock { $0.append(Leftovers(mappings: mappings, descriptor: descriptor)) }
    }

    /// Releases the oldest leftovers, if any.
    public func releaseOldest() {
        let oldest: Leftovers? = pending.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        if let oldest { Self.release(oldest) }
    }

    /// Releases the oldest leftovers until at most `kept` are left.
    ///
    /// - Complexity: O(pages mapped in the files released) for the kernel, one `munmap` per chunk
    ///   and one `close` per file.
    public func release(keepingAtMost kept: Int = 0) {
        let released: [Leftovers] = pending.withLock { pending in
            let excess = max(0, pending.count - max(0, kept))
            defer { pending.removeFirst(excess) }
            return Array(pending.prefix(excess))
        }
        for leftovers in released { Self.release(leftovers) }
    }

    private static func release(_ leftovers: Leftovers) {
        release(mappings: leftovers.mappings, descriptor: leftovers.descriptor)
    }

    /// Unmaps `mappings` and closes `descriptor`: what an allocator's `deinit` does without a queue.
    static func release(mappings: [(address: UInt, length: Int)], descriptor: FileDescriptor) {
        for mapping in mappings { try? unmapMemory(UnsafeMutableRawPointer(bitPattern: mapping.address)!, length: mapping.length) }
        try? descriptor.close()
    }

    deinit {
        for leftovers in pending.withLock({ $0 }) { Self.release(leftovers) }
    }
}
