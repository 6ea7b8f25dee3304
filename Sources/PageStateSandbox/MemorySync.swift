import PageStateKernel
import PageStateMemory
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Builds what a worker needs to show a guest's current versions: nothing when it already does, the
/// changed delta pages when the layers are the same, or a full image. Files travel once per worker
/// (allocators by identity); every descriptor handed over is read-only or sealed against writing.
struct MemorySync {
    private(set) var files: [FileEntry] = []
    /// Descriptors to send, in `files` order; the ones this sync opened are closed by `close()`.
    private(set) var descriptors: [FileDescriptor] = []
    private var opened: [FileDescriptor] = []
    private(set) var heap = MemoryUpdate.unchanged
    private(set) var stable = MemoryUpdate.unchanged

    /// Plans the update of `worker` to `heap` and `stable`; updates its record of sent allocators.
    init(worker: WorkerProcess, heap: PageMap, heapCapacity: UInt64, stable: PageMap, stableCapacity: UInt64) throws(ExecutionError) {
        if let heldHeap = worker.heldHeap, let heldStable = worker.heldStable,
           heldHeap.isUnchangedCopy(of: heap), heldStable.isUnchangedCopy(of: stable) {
            return  // the worker shows these very versions: the common case of back-to-back queries
        }
        do {
            if let heldHeap = worker.heldHeap, let heldStable = worker.heldStable,
               heldHeap.hasSameLayers(as: heap), heldStable.hasSameLayers(as: stable),
               let heapChanges = try changes(from: heldHeap, to: heap, worker: worker),
               let stableChanges = try changes(from: heldStable, to: stable, worker: worker) {
                self.heap = heapChanges
                self.stable = stableChanges
                return
            }
            close()
            files = []
            descriptors = []
            worker.sentAllocators = [:]
            self.heap = try image(heap, capacity: heapCapacity, worker: worker)
            self.stable = try image(stable, capacity: stableCapacity, worker: worker)
        } catch {
            close()
            throw .system("preparing the worker's memory: \(error)")
        }
    }

    /// Hands the worker a prepared result file (`ResultFilePreparation`); closed here once sent.
    mutating func handOver(resultFile descriptor: FileDescriptor) {
        files.append(.resultFile)
        descriptors.append(descriptor)
        opened.append(descriptor)
    }

    /// Closes the descriptors this sync opened (call once the message was sent); a second call closes
    /// nothing (their numbers may belong to other files by then).
    mutating func close() {
        for descriptor in opened { try? descriptor.close() }
        opened = []
    }

    /// The delta pages that changed, or nil when a page was removed (only a new image can say that).
    private mutating func changes(from held: PageMap, to current: PageMap, worker: WorkerProcess) throws(Errno) -> MemoryUpdate? {
        let changed = current.delta.changedIndices(comparedTo: held.delta)
        if changed.isEmpty && current.sizeInPages == held.sizeInPages { return .unchanged }
        var pages: [PageReference] = []
        pages.reserveCapacity(changed.count)
        for index in changed {
            guard let page = current.delta[index] else { return nil }
            pages.append(try reference(index, page, worker: worker))
        }
        return .changes(sizeInPages: current.sizeInPages, pages: pages)
    }

    private mutating func image(_ map: PageMap, capacity: UInt64, worker: WorkerProcess) throws(Errno) -> MemoryUpdate {
        var layers: [[RunReference]] = []
        for layer in map.layers {
            var fileIndex: [Int32: UInt32] = [:]
            var runs: [RunReference] = []
            for run in layer.fileRuns {
                let file: UInt32
                if let known = fileIndex[run.descriptor.rawValue] {
                    file = known
                } else {
                    file = UInt32(files.count)
                    fileIndex[run.descriptor.rawValue] = file
                    files.append(.layer)
                    descriptors.append(try readOnly(run.descriptor))
                }
                runs.append(RunReference(firstPage: run.firstPage, pageCount: run.pageCount, file: file, offset: run.offset))
            }
            layers.append(runs)
        }
        var pages: [PageReference] = []
        pages.reserveCapacity(map.delta.count)
        for (index, page) in map.delta { pages.append(try reference(index, page, worker: worker)) }
        return .image(sizeInPages: map.sizeInPages, capacityInPages: capacity, layers: layers, pages: pages)
    }

    private mutating func reference(_ index: PageIndex, _ page: Page, worker: WorkerProcess) throws(Errno) -> PageReference {
        let allocator = page.allocator
        let description = allocator.describe()
        if (worker.sentAllocators[allocator.identity] ?? 0) < description.length {
            files.append(.allocator(identity: allocator.identity, length: description.length))
            descriptors.append(allocator.isOwner ? try readOnly(allocator.descriptor) : allocator.descriptor)
            worker.sentAllocators[allocator.identity] = description.length
        }
        return PageReference(index: index, allocator: allocator.identity, place: page.location)
    }

    /// A read-only descriptor for the same file (`/proc/self/fd/N` reopened), so the worker can map it
    /// privately but never write it. Sealed result files are immutable already and go as they are.
    private mutating func readOnly(_ descriptor: FileDescriptor) throws(Errno) -> FileDescriptor {
        if let seals = try? descriptor.seals(), seals.contains(.write) { return descriptor }
        let copy: FileDescriptor
        do { copy = try FileDescriptor.open("/proc/self/fd/\(descriptor.rawValue)", .readOnly, options: .closeOnExec) } catch {
            throw error as? Errno ?? .ioError
        }
        opened.append(copy)
        return copy
    }
}
