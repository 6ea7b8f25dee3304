import Dispatch
import Foundation
import PageStateKernel
import PageStateMemory
import SystemPackage

/// Writes overlay files (format in `OverlayFormat`).
enum OverlayFile {
    /// What writing an overlay produced besides the file.
    struct Written {
        /// SHA-256 of each page written, in index order.
        var pageHashes: [ContentHash]
        /// The file's manifest entry, computed from the bytes written (not read back).
        var entry: Manifest.File
    }

    /// Writes the pages of `memory` at `indices` (ascending, unique) to a new file at `path`, synced
    /// before returning. The file is created exclusively: an existing file is an error, never
    /// overwritten. The pages are hashed on other cores while the write runs.
    ///
    /// - Complexity: O(k) for k pages: one batched write of k pages plus the index and footer.
    static func write(pages indices: [PageIndex], of memory: PageMap, to path: FilePath, writer: any FileWriter) throws(StoreError) -> Written {
        let ranges = OverlayFormat.ranges(of: indices)
        let trailer = OverlayFormat.trailer(ranges: ranges, storedPages: UInt64(indices.count))
        let descriptor = try system("create", path) {
            try FileDescriptor.open(path, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
        defer { try? descriptor.close() }
        return try memory.withPages(indices) { (buffers) throws(StoreError) -> Written in
            try trailer.withBytes { (trailerBytes) throws(StoreError) -> Written in
                var segments = buffers.enumerated().map { WriteSegment(offset: UInt64($0.offset * Page.size), bytes: $0.element) }
                segments.append(WriteSegment(offset: UInt64(indices.count * Page.size), bytes: trailerBytes))
                let hashing = ConcurrentHashing(buffers)
                let result = Result { () throws(StoreError) in
                    try system("write", path) { try writer.write(segments, to: descriptor, sync: true) }
                }
                let pageHashes = hashing.wait()
                try result.get()
                let size = UInt64(indices.count * Page.size + trailer.count)
                return Written(pageHashes: pageHashes,
                               entry: FileHashing.entry(name: path.lastComponent!.string, size: size,
                                                        blockHashes: pageHashes + FileHashing.blockHashes(of: trailerBytes)))
            }
        }
    }
}

/// SHA-256 of many page buffers, split across the cores on a background queue.
///
/// Invariant: the buffers stay valid and unchanged until `wait()` returns (callers wait before
/// releasing them, including when their own work throws).
private final class ConcurrentHashing: @unchecked Sendable {
    private let buffers: [UnsafeRawBufferPointer]
    private let hashes: UnsafeMutableBufferPointer<ContentHash>
    private let group = DispatchGroup()

    init(_ buffers: [UnsafeRawBufferPointer]) {
        self.buffers = buffers
        hashes = .allocate(capacity: buffers.count)
        hashes.initialize(repeating: MemoryHashing.zeroPage)
        let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount, buffers.count / 64))
        DispatchQueue.global().async(group: group) { [self] in
            DispatchQueue.concurrentPerform(iterations: parts) { part in hash(part: part, of: parts) }
        }
    }

    private func hash(part: Int, of parts: Int) {
        for index in (buffers.count * part / parts)..<(buffers.count * (part + 1) / parts) { hashes[index] = .of(buffers[index]) }
    }

    /// The hashes, in buffer order, once all are computed.
    func wait() -> [ContentHash] {
        group.wait()
        return Array(hashes)
    }

    deinit { hashes.deallocate() }
}
