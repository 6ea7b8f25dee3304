import PageStateKernel
import PageStateMemory
import SystemPackage

/// Writes overlay files (format in `OverlayFormat`).
enum OverlayFile {
    /// Writes the pages of `memory` at `indices` (ascending, unique) to a new file at `path`, synced
    /// before returning. The file is created exclusively: an existing file is an error, never overwritten.
    ///
    /// - Complexity: O(k) for k pages: one batched write of k pages plus the index and footer.
    static func write(pages indices: [PageIndex], of memory: PageMap, to path: FilePath, writer: any FileWriter) throws(StoreError) {
        let ranges = OverlayFormat.ranges(of: indices)
        let trailer = OverlayFormat.trailer(ranges: ranges, storedPages: UInt64(indices.count))
        let descriptor = try system("create", path) {
            try FileDescriptor.open(path, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        }
        defer { try? descriptor.close() }
        try memory.withPages(indices) { (buffers) throws(StoreError) in
            try trailer.withBytes { (trailerBytes) throws(StoreError) in
                var segments = buffers.enumerated().map { WriteSegment(offset: UInt64($0.offset * Page.size), bytes: $0.element) }
                segments.append(WriteSegment(offset: UInt64(indices.count * Page.size), bytes: trailerBytes))
                try system("write", path) { try writer.write(segments, to: descriptor, sync: true) }
            }
        }
    }
}
