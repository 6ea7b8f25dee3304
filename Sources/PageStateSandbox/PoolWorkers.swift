import PageStateKernel

/// The sandbox pool's live workers and what its maintenance needs to know about them, kept up to
/// date as workers are checked out and in, so that no pool operation scans every worker: the idle
/// ones in least-recently-used order, which of them were added or checked in since maintenance last
/// asked what to measure, and the sum of their last measurements. An execution's check-out and
/// check-in hash the guest's id once each; adding a worker hashes it once. Tracking what to measure
/// costs them nothing but a counter: a worker added or checked in gets the next `touches` number,
/// and `idle`, in touch order, has the workers touched since the last `takeIdleUnmeasured()` at its
/// newest end. A new worker's spawn latency waits in its slot, which the spawn has just written, and
/// joins `spawnLatencies` when the worker is checked in, removed or returned by
/// `takeIdleUnmeasured()`, or (idle ones) when `flushSpawnLatencies()` runs: the spawn itself writes
/// no buffer of samples; whoever moves the latency does (performance.md, session 38).
///
/// Invariants: a slot is in `idle` exactly when its worker is not busy, and `idle` is ordered by
/// `lastTouch` (so also by `lastUsed`); touch numbers are never reused; every idle slot with
/// `lastTouch <= measuredThrough` was returned by a `takeIdleUnmeasured()` after its last touch;
/// no idle slot with `lastTouch <= max(measuredThrough, flushedThrough)` holds a spawn latency;
/// `residentBytes` is the sum of the slots' `residentBytes`; a spawn latency is in its slot or was
/// added to `spawnLatencies` (which keeps the latest 4,096), never both, never twice. Generic over
/// the worker so that tests can check it against a plain model without processes. Its slots are
/// shared objects: use one `PoolWorkers` in place, never a copy of it.
struct PoolWorkers<Worker: AnyObject> {
    /// A live worker and its bookkeeping; a class so that an execution's check-out and check-in
    /// update it in place (one dictionary lookup, no copies). Fields are guarded by the pool's lock.
    final class Slot: RecencyListNode {
        let worker: Worker
        let guestID: UInt64
        fileprivate(set) var busy = true
        fileprivate(set) var lastUsed: MonotonicInstant
        /// The pool's `touches` when the slot was added or last checked in: a measurement asked for
        /// before a later touch is stale.
        fileprivate(set) var lastTouch: UInt64
        /// Resident bytes when last measured; idle workers do not grow, so only workers that ran
        /// since are measured again.
        fileprivate(set) var residentBytes: UInt64 = 0
        /// The worker's spawn latency, until it joins `spawnLatencies`.
        fileprivate(set) var pendingSpawnNanoseconds: UInt64?
        /// Whether the slot was removed (checking it in again would be a bug).
        fileprivate(set) var removed = false
        /// `idle`'s links; `slots` keeps every listed slot alive.
        unowned(unsafe) var older: Slot?
        unowned(unsafe) var newer: Slot?

        init(worker: Worker, guestID: UInt64, lastUsed: MonotonicInstant, lastTouch: UInt64) {
            self.worker = worker
            self.guestID = guestID
            self.lastUsed = lastUsed
            self.lastTouch = lastTouch
        }
    }

    private(set) var slots: [UInt64: Slot] = [:]
    /// The slots of idle workers, least recently used first (`slots` keeps them alive).
    private(set) var idle = RecencyList<Slot>()
    /// Additions and check-ins so far.
    private var touches: UInt64 = 0
    /// `touches` at the last `takeIdleUnmeasured()`: idle slots touched since are the ones to measure.
    private var measuredThrough: UInt64 = 0
    /// `touches` at the last `flushSpawnLatencies()`.
    private var flushedThrough: UInt64 = 0
    /// The workers' resident memory when each was last measured.
    private(set) var residentBytes: UInt64 = 0
    /// Recent spawn latencies, but for those still waiting in their slots.
    private(set) var spawnLatencies = LatencySamples()

    var count: Int { slots.count }

    /// Workers for a pool of up to `expectedWorkers` live ones (more only cost a rehash): the index
    /// of slots is made for 4x as many, so that looking up a guest with no worker (every spawn) rarely
    /// compares a key, as at 1 live worker so at 1,000 (~16 bytes a bucket: 8,192 buckets, 130 KiB,
    /// for 1,024), and growing the pool never rehashes it on a spawn's path (performance.md,
    /// session 41). At most 65,536 are planned for.
    init(expectedWorkers: Int = 0) {
        slots.reserveCapacity(4 * min(max(0, expectedWorkers), 1 << 16))
    }

    subscript(guestID: UInt64) -> Slot? { slots[guestID] }

    /// Adds a new worker for `guestID` (which has none), busy unless `idle` (then most recently used),
    /// with the latency of its spawn.
    ///
    /// - Complexity: O(1) amortized.
    mutating func add(_ worker: Worker, for guestID: UInt64, at now: MonotonicInstant, idle isIdle: Bool = false,
                      spawnNanoseconds: UInt64) {
        touches += 1
        let slot = Slot(worker: worker, guestID: guestID, lastUsed: now, lastTouch: touches)
        slot.pendingSpawnNanoseconds = spawnNanoseconds
        let replaced = slots.updateValue(slot, forKey: guestID)  // one hash, where a check first took two
        precondition(replaced == nil, "a guest has one worker at a time")
        if isIdle {
            slot.busy = false
            idle.touch(slot)
        }
    }

    /// Removes the worker of `guestID`, if any, and returns it.
    ///
    /// - Complexity: O(1) amortized.
    mutating func remove(_ guestID: UInt64) -> Worker? {
        guard let slot = slots.removeValue(forKey: guestID) else { return nil }
        slot.removed = true
        idle.remove(slot)
        residentBytes -= slot.residentBytes
        flushSpawnLatency(of: slot)
        return slot.worker
    }

    /// Removes every worker and returns them (their spawn latencies and the touch count stay).
    ///
    /// - Complexity: O(workers).
    mutating func removeAll() -> [Worker] {
        for slot in slots.values {
            slot.removed = true
            flushSpawnLatency(of: slot)
        }
        let workers = slots.values.map(\.worker)
        slots = [:]
        idle = RecencyList()
        residentBytes = 0
        return workers
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
    /// - Complexity: O(1) amortized.
    mutating func checkIn(_ slot: Slot, at now: MonotonicInstant) {
        precondition(!slot.removed, "a slot of these workers")
        touches += 1
        slot.busy = false
        slot.lastUsed = now
        slot.lastTouch = touches
        idle.touch(slot)
        flushSpawnLatency(of: slot)
    }

    /// Moves the spawn latency waiting in `slot`, if any, to `spawnLatencies`.
    ///
    /// - Complexity: O(1) amortized.
    private mutating func flushSpawnLatency(of slot: Slot) {
        guard let latency = slot.pendingSpawnNanoseconds else { return }
        slot.pendingSpawnNanoseconds = nil
        spawnLatencies.add(nanoseconds: latency)
    }

    /// Moves the spawn latencies waiting in idle workers' slots to `spawnLatencies` (those of busy
    /// workers wait for their check-in or removal).
    ///
    /// - Complexity: O(idle workers touched since the last call or `takeIdleUnmeasured()`, whichever was later).
    mutating func flushSpawnLatencies() {
        var next = idle.newest
        while let slot = next, slot.lastTouch > max(measuredThrough, flushedThrough) {
            flushSpawnLatency(of: slot)
            next = slot.older
        }
        flushedThrough = touches
    }

    /// The idle workers added or checked in since the last call, newest first, with their guests
    /// and touch numbers (to pass back to `record`): every idle worker that ran since it was last
    /// measured, unless an earlier call returned it after it last ran (its measurement is on its way).
    ///
    /// - Complexity: O(workers returned).
    mutating func takeIdleUnmeasured() -> [(guestID: UInt64, worker: Worker, touch: UInt64)] {
        var toMeasure: [(guestID: UInt64, worker: Worker, touch: UInt64)] = []
        var next = idle.newest
        while let slot = next, slot.lastTouch > measuredThrough {
            toMeasure.append((slot.guestID, slot.worker, slot.lastTouch))
            flushSpawnLatency(of: slot)
            next = slot.older
        }
        measuredThrough = touches
        return toMeasure
    }

    /// Records a measurement of `worker`, asked for when its slot's touch number was `touch`, unless
    /// it is no longer the guest's worker or was checked out since.
    ///
    /// - Complexity: O(1).
    mutating func record(residentBytes bytes: UInt64, of worker: Worker, guestID: UInt64, touch: UInt64) {
        guard let slot = slots[guestID], slot.worker === worker, !slot.busy, slot.lastTouch == touch else { return }
        residentBytes = residentBytes - slot.residentBytes + bytes
        slot.residentBytes = bytes
    }

    /// The guest of the least recently used idle worker, if it has been idle longer than `timeout`.
    ///
    /// - Complexity: O(1).
    func oldestIdle(idleForNanoseconds timeout: UInt64, at now: MonotonicInstant) -> UInt64? {
        guard let slot = idle.oldest, now.nanoseconds(since: slot.lastUsed) > timeout else { return nil }
        return slot.guestID
    }
}
