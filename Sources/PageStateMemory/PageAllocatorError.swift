import PageStateKernel
import SystemPackage

/// The allocator operation a system error came from.
public enum PageAllocatorOperation: String, Sendable, Hashable {
    case createBackingFile = "create backing file"
    case sealBackingFile = "seal backing file"
    case growBackingFile = "grow backing file"
    case mapChunk = "map chunk"
    case punchHole = "punch hole"
    case inspectBackingFile = "inspect backing file"
    case duplicateDescriptor = "duplicate descriptor"
    case writeSealedFile = "write sealed page file"
}

/// Why an allocator operation or a received description was refused.
public enum PageAllocatorError: Error, Hashable, CustomStringConvertible {
    /// A system call failed (ENOMEM, ENOSPC, EMFILE, ...).
    case system(PageAllocatorOperation, Errno)
    /// All 2^32 slots of one allocator are in use.
    case exhausted
    /// Only the process that created an allocator allocates from it.
    case notOwner
    /// A description's file length is not one the allocator could have produced, or exceeds the file.
    case invalidLength(claimed: UInt64, actual: UInt64)
    /// A memfd handed over without `F_SEAL_SHRINK`: any holder could shrink it and crash every mapper.
    case unsealedMemfd
    /// A sealed page file that lacks a seal that makes it immutable (`F_SEAL_WRITE`, `SHRINK`, `GROW`).
    case mutableFile(missing: FileSeals)
    /// A page offset beyond the described length.
    case offsetOutOfRange(offset: UInt64, length: UInt64)
    /// A page offset that is not a multiple of 4 KiB.
    case misalignedOffset(UInt64)
    /// A page offset that points at allocator metadata, not at a page.
    case metadataOffset(UInt64)
    /// A page offset whose slot was released (and possibly reclaimed) or never allocated.
    case reclaimedPage(offset: UInt64)
    /// A page offset whose slot now holds a different page than the description names.
    case stalePage(offset: UInt64, expectedTag: UInt32, actualTag: UInt32)

    public var description: String {
        switch self {
        case .system(let operation, let errno): "page allocator: \(operation.rawValue) failed: \(errno)"
        case .exhausted: "page allocator: all 2^32 slots are in use"
        case .notOwner: "page allocator: an attached allocator cannot allocate; only its owner can"
        case .invalidLength(let claimed, let actual):
            "page allocator: described length \(claimed) is not a chunk boundary within the file (\(actual) bytes)"
        case .unsealedMemfd: "page allocator: received memfd is not sealed against shrinking"
        case .mutableFile(let missing):
            "page allocator: received page file is not immutable (missing seals 0x\(String(missing.rawValue, radix: 16)))"
        case .offsetOutOfRange(let offset, let length): "page allocator: offset \(offset) is beyond length \(length)"
        case .misalignedOffset(let offset): "page allocator: offset \(offset) is not page aligned"
        case .metadataOffset(let offset): "page allocator: offset \(offset) points at allocator metadata"
        case .reclaimedPage(let offset): "page allocator: offset \(offset) refers to a released page"
        case .stalePage(let offset, let expected, let actual):
            "page allocator: offset \(offset) holds page tag \(actual), description says \(expected)"
        }
    }
}
