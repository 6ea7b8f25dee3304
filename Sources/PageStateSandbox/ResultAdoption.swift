import PageStateMemory
import SystemPackage

/// Checks a worker's untrusted report of a successful execution and adopts an update's pages into
/// the guest without copying: the sealed result file becomes a read-only allocator whose pages the
/// guest's memories then hold. Anything inconsistent is rejected before the guest changes.
enum ResultAdoption {
    static func adopt(_ success: ResultMessage.Success, file: FileDescriptor?, kind: ExecutionKind, guest: Guest,
                      from versions: (heap: PageMap, stable: PageMap), allowance: UInt64,
                      maximumResultFiles: Int = .max) throws(ExecutionError) -> (ExecutionOutcome, shown: (PageMap, PageMap)?) {
        let (heap, stable) = versions
        guard kind == .update else {
            try? file?.close()
            guard success.heapPages.isEmpty, success.stablePages.isEmpty, file == nil,
                  success.heapSize == heap.sizeInPages, success.stableSize == stable.sizeInPages else {
                throw .malformedResult("a query reported changes")
            }
            return (ExecutionOutcome(output: success.output), nil)
        }
        guard success.heapSize >= heap.sizeInPages, success.heapSize <= guest.heapCapacityInPages,
              success.stableSize >= stable.sizeInPages, success.stableSize <= guest.stableCapacityInPages else {
            try? file?.close()
            throw .malformedResult("memory sizes \(success.heapSize)/\(success.stableSize) pages are not a growth within capacity")
        }
        let grown = (success.heapSize - heap.sizeInPages) + (success.stableSize - stable.sizeInPages)
        guard grown == success.grownPages, grown <= allowance else {
            try? file?.close()
            throw .malformedResult("grew \(grown) pages, reported \(success.grownPages), allowed \(allowance)")
        }
        guard success.heapPages.allSatisfy({ $0.index < success.heapSize }),
              success.stablePages.allSatisfy({ $0.index < success.stableSize }) else {
            try? file?.close()
            throw .rejectedPages("a page index beyond its memory's size")
        }
        var heapChanges = PageDelta(), stableChanges = PageDelta()
        var results: PageAllocator?
        if let file {
            do {
                let imported = try PageAllocator.importSealed(file)
                results = imported
                heapChanges = try imported.resolve(success.heapPages)
                stableChanges = try imported.resolve(success.stablePages)
            } catch {
                throw .rejectedPages("\(error)")
            }
        } else if !success.heapPages.isEmpty || !success.stablePages.isEmpty {
            throw .rejectedPages("pages listed without a result file")
        }
        let shown = guest.adopt(heapSize: success.heapSize, stableSize: success.stableSize,
                                heapChanges: heapChanges, stableChanges: stableChanges,
                                resultFile: results, maximumResultFiles: maximumResultFiles)
        return (ExecutionOutcome(output: success.output, heapDelta: heapChanges, stableDelta: stableChanges, grownPages: grown), shown)
    }
}
