import PageStateMemory
import Synchronization

/// Runs entry points in the host's own process, with the same memory model as the sandbox: the
/// baseline the sandbox is measured against and the reference the differential tests compare with.
/// No isolation: a guest that escapes its language runtime owns the host.
public final class InProcessExecutor: GuestExecutor {
    private let runtime: WorkerRuntime
    private let budget: MemoryBudget
    private let hostCall: HostCallHandler
    private let sessions = Mutex<[UInt64: Held]>([:])

    /// A guest's mapping and the versions it shows.
    private struct Held: @unchecked Sendable {  // used only under the guest's execution lock
        var session: GuestSession
        var heap: PageMap
        var stable: PageMap
    }

    public init(runtime: WorkerRuntime, budget: MemoryBudget, hostCall: @escaping HostCallHandler = { _, _ in [] }) {
        self.runtime = runtime
        self.budget = budget
        self.hostCall = hostCall
    }

    public func execute(_ guest: Guest, _ request: ExecutionRequest) throws(ExecutionError) -> ExecutionOutcome {
        guard let body = runtime.entryPoint(named: request.entryPoint) else { throw .unknownEntryPoint(request.entryPoint) }
        return try guest.serialized { () throws(ExecutionError) -> ExecutionOutcome in
            let held = try session(for: guest)
            let call = { (bytes: [UInt8]) throws(ExecutionError) -> [UInt8] in
                do { return try self.hostCall(guest, bytes) } catch { throw .trapped("host call failed: \(error)") }
            }
            guard request.kind == .update else {
                return ExecutionOutcome(output: try held.session.runQuery(body, request, hostCall: call))
            }
            var granted = request
            granted.memoryAllowancePages = budget.reserve(request.memoryAllowancePages)
            let update: GuestSession.Update
            do throws(ExecutionError) { update = try held.session.runUpdate(body, granted, hostCall: call) } catch {
                budget.settle(granted: granted.memoryAllowancePages, used: 0)
                throw error
            }
            budget.settle(granted: granted.memoryAllowancePages, used: update.grownPages)
            let heapChanges: PageDelta, stableChanges: PageDelta
            do {
                heapChanges = try held.session.heap.memory.capture(update.heapDirty)
                stableChanges = try held.session.stable.memory.capture(update.stableDirty)
            } catch {
                try? held.session.rollback(update)
                throw .system("capturing pages: \(error)")
            }
            try held.session.commit(update, heapChanges: heapChanges, stableChanges: stableChanges)
            let (heap, stable) = guest.adopt(heapSize: update.heapSize, stableSize: update.stableSize,
                                             heapChanges: heapChanges, stableChanges: stableChanges)
            sessions.withLock { $0[guest.id] = Held(session: held.session, heap: heap, stable: stable) }
            return ExecutionOutcome(output: update.output, heapDelta: heapChanges, stableDelta: stableChanges,
                                    grownPages: update.grownPages)
        }
    }

    /// The guest's mapping brought to its current versions: remapping changed pages when the layers
    /// are the same, mapping afresh otherwise.
    private func session(for guest: Guest) throws(ExecutionError) -> Held {
        let (heap, stable) = guest.versions
        if let held = sessions.withLock({ $0[guest.id] }), held.heap.hasSameLayers(as: heap), held.stable.hasSameLayers(as: stable) {
            try held.session.synchronize(heap: heap, stable: stable, heapSize: heap.sizeInPages, stableSize: stable.sizeInPages)
            let current = Held(session: held.session, heap: heap, stable: stable)
            sessions.withLock { $0[guest.id] = current }
            return current
        }
        let fresh = Held(session: try GuestSession(heap: heap, heapCapacity: guest.heapCapacityInPages, stable: stable,
                                                   stableCapacity: guest.stableCapacityInPages,
                                                   restoreThreads: 1, faultScope: .process),
                         heap: heap, stable: stable)
        sessions.withLock { $0[guest.id] = fresh }
        return fresh
    }

    /// Drops the mapping of `guest` (its next execution maps it afresh).
    public func forget(_ guest: Guest) {
        _ = sessions.withLock { $0.removeValue(forKey: guest.id) }
    }
}

/// Answers a guest's host calls: the only channel from a guest to the host.
public typealias HostCallHandler = @Sendable (Guest, [UInt8]) throws -> [UInt8]
