import Dispatch
import Foundation

/// Splits `0..<count` into consecutive parts — at most one per core (leaving `sparedCores` of them
/// to other work, for example a write the parts overlap), each at least `minimumPart` long (one part
/// when `count` is smaller) — and calls `body` with each, in parallel; returns when all are done.
///
/// `body` runs on several threads at once: it may only write state that belongs to its own part.
func forEachPartConcurrently(of count: Int, minimumPart: Int, sparedCores: Int = 0, _ body: (Range<Int>) -> Void) {
    let parts = max(1, min(ProcessInfo.processInfo.activeProcessorCount - sparedCores, count / max(1, minimumPart)))
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let body = body  // called on disjoint parts only (see above)
        DispatchQueue.concurrentPerform(iterations: parts) { part in body((count * part / parts)..<(count * (part + 1) / parts)) }
    }
}
