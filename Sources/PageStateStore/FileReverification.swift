import Dispatch
import Synchronization
import SystemPackage

/// Where re-verification goes on: the next chunk to check (overlays by id, then chunks), and the
/// newest overlay of the current round. Overlays written after a round began wait for the next round
/// (they were hashed as they were written), so that every round ends however fast files are added.
struct ReverificationCursor: Sendable {
    var overlay: UInt64
    var chunk: Int
    var roundEnd: UInt64
}

/// Re-hashes chunks of the overlays a checkpoint reuses from the previous manifest and checks them
/// against it, on its own serial queue (see `BackgroundWrite` for why not a global one), paced by the
/// bytes the checkpoint writes: the reads overlap its writes and amount to at most `fraction` of them
/// (plus one chunk).
///
/// It walks the reused chunks in rounds (`ReverificationCursor`), from where the previous checkpoint
/// stopped, each chunk at most once per checkpoint; a round over R reused bytes ends within about
/// R / (bytes re-verified per checkpoint) checkpoints, at least one chunk each.
///
/// Invariants: `outcome` is written only by the background job and read only after `group.wait()`;
/// the job verifies a chunk only while `pacing.allowance` is positive, and subtracts its length.
final class FileReverification: @unchecked Sendable {
    /// An overlay the checkpoint reuses, with its entry in the previous manifest.
    struct Reused: Sendable {
        var id: UInt64
        var path: FilePath
        var entry: Manifest.File
    }

    /// What a finished re-verification did.
    struct Outcome: Sendable {
        /// Where the next checkpoint continues: after the last chunk checked, or at the chunk that
        /// failed, so that it is checked first again.
        var next: ReverificationCursor?
        /// Bytes found intact.
        var verifiedBytes: UInt64
        /// `.hashMismatch` naming the file and offset of a chunk that changed; `.malformedFile` when a
        /// file's size changed; `.missingFile`; `.system`.
        var failure: StoreError?
    }

    private struct Pacing {
        var allowance: Int
        var closed = false
    }

    private let fraction: Double
    private let pacing: Mutex<Pacing>
    private let wakeUp = DispatchSemaphore(value: 0)
    private let group = DispatchGroup()
    private var outcome: Outcome

    /// Starts checking `files` from `start` (the first chunk after it when it is gone), with an
    /// allowance of one chunk plus `fraction` of `written`, the bytes already written for this checkpoint.
    init(_ files: [Reused], from start: ReverificationCursor?, fraction: Double, written: UInt64) {
        self.fraction = fraction.isNaN ? 0 : max(0, fraction)
        pacing = Mutex(Pacing(allowance: 1))
        outcome = Outcome(next: start, verifiedBytes: 0)
        allow(bytes: written)
        let files = files.filter { !$0.entry.chunks.isEmpty }.sorted { $0.id < $1.id }
        guard !files.isEmpty else { return }
        DispatchQueue(label: "pagestate.reverification").async(group: group) { [self] in
            outcome = walk(files, from: start)
        }
    }

    /// Raises the allowance by `fraction` of `bytes` the checkpoint is about to write.
    func allow(bytes: UInt64) {
        let granted = min(Double(Int.max / 4), Double(bytes) * fraction)
        pacing.withLock { $0.allowance = min(Int.max / 2, $0.allowance + Int(granted)) }
        wakeUp.signal()
    }

    /// Spends what is left of the allowance, then returns what was done. Idempotent.
    func finish() -> Outcome {
        pacing.withLock { $0.closed = true }
        wakeUp.signal()
        group.wait()
        return outcome
    }

    /// Checks chunks of `files` (ascending ids, none empty) from `start` while the allowance lasts.
    private func walk(_ files: [Reused], from start: ReverificationCursor?) -> Outcome {
        let newestID = files.last!.id
        var cursor = start ?? ReverificationCursor(overlay: files[0].id, chunk: 0, roundEnd: newestID)
        var index = files.firstIndex {
            $0.id > cursor.overlay || ($0.id == cursor.overlay && cursor.chunk < $0.entry.chunks.count)
        } ?? files.count
        var verified: UInt64 = 0
        var open: FileDescriptor?
        defer { try? open?.close() }
        for _ in 0..<files.reduce(0, { $0 + $1.entry.chunks.count }) {
            if index == files.count || files[index].id > cursor.roundEnd {
                index = 0
                cursor = ReverificationCursor(overlay: files[0].id, chunk: 0, roundEnd: newestID)
            } else if files[index].id != cursor.overlay {
                cursor.overlay = files[index].id
                cursor.chunk = 0
            }
            let file = files[index]
            let length = FileHashing.length(ofChunk: cursor.chunk, size: file.entry.size)
            guard spend(length) else { break }
            do throws(StoreError) {
                if open == nil { open = try FileHashing.open(file.path, expecting: file.entry) }
                try FileHashing.verify(chunk: cursor.chunk, of: open!, path: file.path, against: file.entry)
            } catch {
                return Outcome(next: cursor, verifiedBytes: verified, failure: error)
            }
            verified += UInt64(length)
            cursor.chunk += 1
            if cursor.chunk == file.entry.chunks.count {
                try? open?.close()
                open = nil
                index += 1
            }
        }
        return Outcome(next: cursor, verifiedBytes: verified)
    }

    /// Takes `bytes` from the allowance once it is positive; false when it is spent and closed.
    private func spend(_ bytes: Int) -> Bool {
        while true {
            let (spent, closed) = pacing.withLock { pacing in
                guard pacing.allowance > 0 else { return (false, pacing.closed) }
                pacing.allowance -= bytes
                return (true, false)
            }
            if spent { return true }
            if closed { return false }
            wakeUp.wait()
        }
    }
}
