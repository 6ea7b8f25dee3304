import Foundation
import PageStateMemory
import SystemPackage

/// Why the state manager refused or failed an operation. Every error about a file names it, and
/// errors about its contents name the byte offset where the damage was found.
public enum StoreError: Error, Hashable, CustomStringConvertible {
    /// A system call failed while `operation` ran on `path`.
    case system(operation: String, path: String, Errno)
    /// The page allocator for loaded memories could not be created or grown.
    case allocator(PageAllocatorError)
    /// A file's bytes do not follow its format.
    case malformedFile(path: String, offset: UInt64, reason: String)
    /// A file's bytes do not match the hash its checkpoint's manifest recorded.
    case hashMismatch(path: String, offset: UInt64)
    /// A checkpoint names a file that does not exist or has the wrong size.
    case missingFile(path: String)
    /// No checkpoint exists at that height.
    case noSuchCheckpoint(Height)
    /// Heights must increase with every commit.
    case heightNotIncreasing(committed: Height, latest: Height)
    /// Only committed heights can be checkpointed.
    case notCommitted(Height)
    /// Every checkpoint failed to load; the errors are listed newest first.
    case noIntactCheckpoint([StoreError])
    /// A memory name that is empty, longer than 255 bytes of UTF-8, or contains "/".
    case invalidMemoryName(String)
    /// Another state manager holds the directory's lock.
    case directoryLocked(path: String)
    /// A checkpoint cannot be deleted while a loaded state maps its files.
    case checkpointInUse(Height)

    public var description: String {
        switch self {
        case .system(let operation, let path, let errno): "\(operation) \(path): \(errno)"
        case .allocator(let error): error.description
        case .malformedFile(let path, let offset, let reason): "\(path): malformed at byte \(offset): \(reason)"
        case .hashMismatch(let path, let offset): "\(path): contents differ from the manifest at byte \(offset)"
        case .missingFile(let path): "\(path): missing or of the wrong size"
        case .noSuchCheckpoint(let height): "no checkpoint at height \(height)"
        case .heightNotIncreasing(let committed, let latest):
            "height \(committed) is not above the latest committed height \(latest)"
        case .notCommitted(let height): "height \(height) was not committed"
        case .noIntactCheckpoint(let errors):
            "no intact checkpoint: " + errors.map(\.description).joined(separator: "; ")
        case .invalidMemoryName(let name): "invalid memory name \(name.debugDescription)"
        case .directoryLocked(let path): "\(path) is in use by another state manager"
        case .checkpointInUse(let height): "checkpoint \(height) is mapped by a loaded state"
        }
    }

    /// The path a file-related error names, if any.
    public var path: String? {
        switch self {
        case .system(_, let path, _), .malformedFile(let path, _, _), .hashMismatch(let path, _),
             .missingFile(let path), .directoryLocked(let path): path
        default: nil
        }
    }
}

/// Runs a throwing system call, naming the operation and path in the error.
@inline(__always)
func system<R>(_ operation: String, _ path: FilePath, _ body: () throws -> R) throws(StoreError) -> R {
    do { return try body() } catch let errno as Errno {
        throw .system(operation: operation, path: path.string, errno)
    } catch {
        // Foundation (directory listing, removal) reports POSIX failures as NSErrors with the errno underneath.
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        let code = underlying?.domain == NSPOSIXErrorDomain ? underlying!.code : (error as NSError).domain == NSPOSIXErrorDomain ? (error as NSError).code : Int(EIO)
        throw .system(operation: operation, path: path.string, Errno(rawValue: Int32(code)))
    }
}
