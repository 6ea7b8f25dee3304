import PageStateKernel
import SystemPackage

/// A dense, read-only file of pages — page `i` at byte `i × 4096` — mapped once, shared and never
/// written. A trailing partial page reads as if padded with zeros.
///
/// The file must not be truncated while mapped (the state manager's base files are immutable);
/// the layer keeps its own descriptor so the mapping's file stays the one that was opened.
public final class BaseFileLayer: PageLayer, @unchecked Sendable {
    public let pageCount: UInt64
    /// The file, for mapping its pages elsewhere.
    public let descriptor: FileDescriptor
    private let base: UnsafeMutableRawPointer?
    private let mappedLength: Int

    /// Maps the file open at `descriptor`, which the layer takes ownership of.
    public init(descriptor: FileDescriptor) throws(Errno) {
        let length: Int64
        do { length = try descriptor.stat().size } catch {
            try? descriptor.close()
            throw error
        }
        self.descriptor = descriptor
        pageCount = (UInt64(length) + UInt64(Page.size) - 1) / UInt64(Page.size)
        mappedLength = Int(pageCount) * Page.size
        if mappedLength == 0 {
            base = nil
            return
        }
        do {
            base = try mapMemory(length: mappedLength, protection: .read, flags: .shared, descriptor: descriptor)
        } catch {
            try? descriptor.close()
            throw error
        }
    }

    /// Opens and maps the file at `path`.
    public convenience init(path: FilePath) throws(Errno) {
        let descriptor: FileDescriptor
        do { descriptor = try FileDescriptor.open(path, .readOnly, options: .closeOnExec) } catch {
            throw error as? Errno ?? .ioError
        }
        try self.init(descriptor: descriptor)
    }

    deinit {
        if let base { try? unmapMemory(base, length: mappedLength) }
        try? descriptor.close()
    }

    /// One run: the whole file (a trailing partial page maps as zero-padded).
    public var fileRuns: [FileRun] {
        pageCount == 0 ? [] : [FileRun(firstPage: 0, pageCount: pageCount, descriptor: descriptor, offset: 0)]
    }

    /// - Complexity: O(1).
    public func bytes(ofPage index: PageIndex) -> UnsafeRawBufferPointer? {
        guard index < pageCount, let base else { return nil }
        return UnsafeRawBufferPointer(start: base + Int(index) * Page.size, count: Page.size)
    }
}
