/// The sandbox pool's live workers and what its maintenance needs to know about them, kept up to
/// date as workers are checked out and in, so that no pool operation scans every worker: the idle
/// ones in least-recently-used order, the ones that ran since their memory was last measured, and
/// the sum of their last measurements. An execution's check-out and check-in hash the guest's id
/// once each.
///
/// Invariants: a slot is in `idle` exactly when its worker is not busy, and `idle` is ordered by
/// `lastUsed`; `unmeasured` holds exactly the guests whose slot has `ranSinceMeasured`;
/// `residentBytes` is the sum of the slots' `residentBytes`. Generic over the worker so that tests
/// can check it against a plain model without processes. Its slots are shared objects: use one
/// `PoolWorkers` in place, never a copy of it.
struct PoolWorkers<Worker: AnyObject> {
    /// A live worker and its bookkeeping; a class so that an execution's check-out and check-in
    /// update it in place (one dictionary lookup, no copies). Fields are guarded by the pool's lock.
    final class Slot: RecencyListNode {
        let worker: Worker
        let guestID: UInt64
        fileprivate(set) var busy = true
        fileprivate(set) var lastUsed: ContinuousClock.Instant
        /// Resident bytes when last measured; idle workers do not grow, so only workers that ran
        /// since are measured again.
        fileprivate(set) var residentBytes: UInt64 = 0
        /// Whether the worker ran since its memory was last measured (it is then in `unmeasured`).
        fileprivate(set) var ranSinceMeasured = true
        /// Check-ins so far: a measurement taken before the latest one is stale.
        fileprivate(set) var checkIns: UInt64 = 0
        /// Whether the slot was removed (checking it in again would be a bug).
        fileprivate(set) var removed = false
        /// `idle`'s links; `slots` keeps every listed slot alive.
        unowned(unsafe) var older: Slot?
        unowned(unsafe) var newer: Slot?

        init(worker: Worker, guestID: UInt64, lastUsed: ContinuousClock.Instant) {
            self.worker = worker
            self.guestID = guestID
            self.lastUsed = lastUsed
        }
    }

    private(set) var slots: [UInt64: Slot] = [:]
    /// The slots of idle workers, least recently used first (`slots` keeps them alive).
    private(set) var idle = RecencyList<Slot>()
    /// Guests whose worker ran since its memory was last measured (busy ones included).
    private(set) var unmeasured: Set<UInt64> = []
    /// The workers' resident memory when each was last measured.
    private(set) var residentBytes: UInt64 = 0

    var count: Int { slots.count }

    subscript(guestID: UInt64) -> Slot? { slots[guestID] }

    /// Adds a new worker for `guestID` (which has none), busy unless `idle` (then most recently used).
    ///
    /// - Complexity: O(1) amortized.
    mutating func add(_ worker: Worker, for guestID: UInt64, at now: ContinuousClock.Instant, idle isIdle: Bool = false) {
        let slot = Slot(worker: worker, guestID: guestID, lastUsed: now)
        let replaced = slots.updateValue(slot, forKey: guestID)  // one hash, where a check first took two
        precondition(replaced == nil, "a guest has one worker at a time")
        unmeasured.insert(guestID)
        if isIdle {
            slot.busy = false
            idle.touch(slot)
        }
    }

    /// Removes the worker of `guestID`, if any, and returns it.
    ///
    /// - Complexity: O(1).
    mutating func remove(_ guestID: UInt64) -> Worker? {
        guard let slot = slots.removeValue(forKey: guestID) else { return nil }
        slot.removed = true
        idle.remove(slot)
        if slot.ranSinceMeasured { unmeasured.remove(guestID) }
        residentBytes -= slot.residentBytes
        return slot.worker
    }

    /// Removes every worker and returns them.
    ///
    /// - Complexity: O(workers).
    mutating func removeAll() -> [Worker] {
        defer { self = PoolWorkers() }
        for slot in slots.values { slot.removed = true }
        return slots.values.map(\.worker)
    }

    /// Marks the worker of `guestID` busy.
    ///
    /// - Complexity: O(1).
    mutating func checkOut(_ guestID: UInt64) -> Worker? {
        guard let slot = slots[guestID] else { return nil }
        slot.busy = true
        idle.remove(slot)
        return slot.worker
    }

    /// Marks the worker of `slot` (a slot of these workers, as `self[guestID]` returned it) idle and
    /// most recently used, to be measured again.
    ///
    /// - Complexity: O(1) amortized; hashes only when the worker had been measured since it last ran.
    mutating func checkIn(_ slot: Slot, at now: ContinuousClock.Instant) {
        precondition(!slot.removed, "a slot of these workers")
        slot.busy = false
        slot.lastUsed = now
        slot.checkIns += 1
        idle.touch(slot)
        if !slot.ranSinceMeasured {
            slot.ranSinceMeasured = true
            unmeasured.insert(slot.guestID)
        }
    }

    /// The idle workers that ran since they were last measured, with their guests and check-in
    /// counts (to pass back to `record`).
    ///
    /// - Complexity: O(unmeasured).
    var idleUnmeasured: [(guestID: UInt64, worker: Worker, checkIns: UInt64)] {
        unmeasured.compactMap { guestID in slots[guestID].flatMap { $0.busy ? nil : (guestID, $0.worker, $0.checkIns) } }
    }

    /// Records a measurement of `worker` taken when it had been checked in `checkIns` times, unless
    /// it is no longer the guest's worker or ran since.
    ///
    /// - Complexity: O(1).
    mutating func record(residentBytes bytes: UInt64, of worker: Worker, guestID: UInt64, checkIns: UInt64) {
        guard let slot = slots[guestID], slot.worker === worker, !slot.busy, slot.checkIns == checkIns else { return }
        residentBytes = residentBytes - slot.residentBytes + bytes
        slot.residentBytes = bytes
        if slot.ranSinceMeasured {
            slot.ranSinceMeasured = false
            unmeasured.remove(guestID)
        }
    }

    /// The guest of the least recently used idle worker, if it has been idle longer than `timeout`.
    ///
    /// - Complexity: O(1).
    func oldestIdle(idleFor timeout: Duration, at now: ContinuousClock.Instant) -> UInt64? {
        guard let slot = idle.oldest, now - slot.lastUsed > timeout else { return nil }
        return slot.guestID
    }
}
