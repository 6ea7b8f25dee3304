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
        let descriptor = try system("create", path) {
            try FileDescriptor.open(path, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
        defer { try? descriptor.close() }
        var complete = false
        defer { if !complete { try? removeFileEntry(path) } }
        let entry = try memory.withPages(indices) { (buffers) throws(StoreError) -> Manifest.File in
            // The pages go first; the trailer (index and footer) is built while they are written.
            let write = BackgroundWrite(
                pages: buffers.enumerated().map { WriteSegment(offset: UInt64($0.offset * Page.size), bytes: $0.element) },
                to: descriptor, writer: writer)
            let trailer = OverlayFormat.trailer(ranges: OverlayFormat.ranges(of: indices), storedPages: UInt64(indices.count))
            return try trailer.withBytes { (trailerBytes) throws(StoreError) -> Manifest.File in
                write.finish(with: WriteSegment(offset: UInt64(indices.count * Page.size), bytes: trailerBytes))
                let pageHashes = hashConcurrently(buffers)
                whileWriting(pageHashes)
                let entry = FileHashing.entry(name: path.lastComponent!.string, size: UInt64(indices.count * Page.size + trailer.count),
                                              blockHashes: pageHashes + FileHashing.blockHashes(of: trailerBytes))
                try system("write", path) { try write.wait() }
                return entry
            }
        }
        complete = true
        return entry
    }
}

/// SHA-256 of each buffer, split across the cores but one, which is left to the write the hashing
/// overlaps (measured on 2 cores: hashing on both slowed the write down more than it gained).
///
/// - Complexity: O(bytes).
private func hashConcurrently(_ buffers: [UnsafeRawBufferPointer]) -> [ContentHash] {
    let hashes = UnsafeMutableBufferPointer<ContentHash>.allocate(capacity: buffers.count)
    defer { hashes.deallocate() }
    hashes.initialize(repeating: MemoryHashing.zeroPage)
    forEachPartConcurrently(of: buffers.count, minimumPart: 64, sparedCores: 1) { part in
        for index in part { hashes[index] = .of(buffers[index]) }
    }
    return Array(hashes)
}

/// A file write running on a background queue: the pages as soon as it starts, then the trailer
/// the caller hands over, then a sync. Its queue is its own serial queue, not a global one: a serial
/// queue gets a thread at once, while a job on the global pool waits (up to a second, measured) when
/// the pool's threads are busy — as when the caller runs on it, under Swift concurrency.
///
/// Invariants: the caller calls `finish(with:)` exactly once, before `wait()` (the background job
/// waits for it); the segments' bytes stay valid and unchanged until `wait()` returns (callers wait
/// before releasing them, including when their own work fails); `trailer` is written before
/// `trailerReady` is signalled and read only after.
private final class BackgroundWrite: @unchecked Sendable {
    private let group = DispatchGroup()
    private let trailerReady = DispatchSemaphore(value: 0)
    private var trailer: WriteSegment?
    private var result: Result<Void, Errno> = .success(())

    init(pages: [WriteSegment], to file: FileDescriptor, writer: any FileWriter) {
        DispatchQueue(label: "pagestate.overlay-write").async(group: group) { [self] in
            let written = Result { () throws(Errno) in try writeDirectlyWhenPossible(pages, to: file, writer: writer) }
            trailerReady.wait()
            result = written.flatMap { _ in Result { () throws(Errno) in try writer.write([trailer!], to: file, sync: true) } }
        }
    }

    /// Hands over the trailer, written after the pages.
    func finish(with trailer: WriteSegment) {
        self.trailer = trailer
        trailerReady.signal()
    }

    /// Returns when the write has ended, throwing its error.
    func wait() throws(Errno) {
        group.wait()
        try result.get()
    }
}

/// Writes `pages`, unsynced. They go with direct I/O when the file system supports it and every
/// page buffer is page-aligned: the device reads them straight from the pages (no copy into the
/// page cache, which leaves the cores to the hashing and never allocates page-cache memory for a
/// file that is read back rarely). The trailer, whose length is not a block multiple, follows
/// through the page cache.
private func writeDirectlyWhenPossible(_ pages: [WriteSegment], to file: FileDescriptor, writer: any FileWriter) throws(Errno) {
    let aligned = pages.allSatisfy { Int(bitPattern: $0.bytes.baseAddress) % Page.size == 0 && $0.bytes.count % Page.size == 0 }
    guard aligned, (try? file.setDirectIO(true)) != nil else {
        return try writer.write(pages, to: file, sync: false)
    }
    try writer.write(pages, to: file, sync: false)
    try file.setDirectIO(false)
}
