import Dispatch
import Foundation
import PageStateKernel
import PageStateMemory
import SystemPackage

/// Writes overlay files (format in `OverlayFormat`).
enum OverlayFile {
    /// Writes the pages of `memory` at `indices` (ascending, unique) to a new file at `path`, synced
    /// before returning. The file is created exclusively: an existing file is an error, never
    /// overwritten; a file this call created is removed again when writing it fails. While the write
    /// runs (on another thread), the pages are hashed on every core and `whileWriting` gets their
    /// hashes, for work that should overlap the device's. Returns the file's manifest entry, computed
    /// from the bytes written (not read back).
    ///
    /// - Complexity: O(k) for k pages: one batched write of k pages plus the index and footer.
    static func write(pages indices: [PageIndex], of memory: PageMap, to path: FilePath, writer: any FileWriter,
                      whileWriting: ([ContentHash]) -> Void = { _ in }) throws(StoreError) -> Manifest.File {
        let ranges = OverlayFormat.ranges(of: indices)
        let trailer = OverlayFormat.trailer(ranges: ranges, storedPages: UInt64(indices.count))
        let descriptor = try system("create", path) {
            try FileDescriptor.open(path, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
        defer { try? descriptor.close() }
        var complete = false
        defer { if !complete { try? removeFileEntry(path) } }
        let entry = try memory.withPages(indices) { (buffers) throws(StoreError) -> Manifest.File in
            try trailer.withBytes { (trailerBytes) throws(StoreError) -> Manifest.File in
                var segments = buffers.enumerated().map { WriteSegment(offset: UInt64($0.offset * Page.size), bytes: $0.element) }
                segments.append(WriteSegment(offset: UInt64(indices.count * Page.size), bytes: trailerBytes))
                let write = BackgroundWrite(segments, to: descriptor, writer: writer)
                let pageHashes = hashConcurrently(buffers)
                whileWriting(pageHashes)
                try system("write", path) { try write.wait() }
                let size = UInt64(indices.count * Page.size + trailer.count)
                return FileHashing.entry(name: path.lastComponent!.string, size: size,
                                         blockHashes: pageHashes + FileHashing.blockHashes(of: trailerBytes))
            }
        }
        complete = true
        return entry
    }
}

/// SHA-256 of each buffer, split across the cores.
///
/// - Complexity: O(bytes).
private func hashConcurrently(_ buffers: [UnsafeRawBufferPointer]) -> [ContentHash] {
    let hashes = UnsafeMutableBufferPointer<ContentHash>.allocate(capacity: buffers.count)
    defer { hashes.deallocate() }
    hashes.initialize(repeating: MemoryHashing.zeroPage)
    forEachPartConcurrently(of: buffers.count, minimumPart: 64) { part in
        for index in part { hashes[index] = .of(buffers[index]) }
    }
    return Array(hashes)
}

/// A file write running on a background queue.
///
/// Invariant: the segments' bytes stay valid and unchanged until `wait()` returns (callers wait
/// before releasing them, including when their own work fails).
private final class BackgroundWrite: @unchecked Sendable {
    private let group = DispatchGroup()
    private var result: Result<Void, Errno> = .success(())

    init(_ segments: [WriteSegment], to file: FileDescriptor, writer: any FileWriter) {
        DispatchQueue.global().async(group: group) { [self] in
            result = Result { () throws(Errno) in try writeDirectlyWhenPossible(segments, to: file, writer: writer) }
        }
    }

    /// Returns when the write has ended, throwing its error.
    func wait() throws(Errno) {
        group.wait()
        try result.get()
    }
}

/// Writes `segments` — pages, then one trailer segment — and syncs the file. The pages go with direct
/// I/O when the file system supports it and every page buffer is page-aligned: the device reads them
/// straight from the pages (no copy into the page cache, which leaves the cores to the hashing and
/// never allocates page-cache memory for a file that is read back rarely). The trailer, whose length
/// is not a block multiple, is written through the page cache.
private func writeDirectlyWhenPossible(_ segments: [WriteSegment], to file: FileDescriptor, writer: any FileWriter) throws(Errno) {
    let pages = segments.dropLast()
    let aligned = pages.allSatisfy { Int(bitPattern: $0.bytes.baseAddress) % Page.size == 0 && $0.bytes.count % Page.size == 0 }
    guard aligned, (try? file.setDirectIO(true)) != nil else {
        return try writer.write(segments, to: file, sync: true)
    }
    try writer.write(Array(pages), to: file, sync: false)
    try file.setDirectIO(false)
    try writer.write([segments.last!], to: file, sync: true)
}
