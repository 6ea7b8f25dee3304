import Dispatch
import PageStateMemory
import Synchronization
import SystemPackage

/// The next result file of one worker, made in the background while the worker runs its current
/// execution. Allocating and clearing fresh shared-memory pages is the larger half of writing an
/// update's result into a new memfd (4,096 pages: ~4.5 of ~8 ms here); a prepared file
/// (`SealedPageFile.prepare`) leaves the worker only the copy.
///
/// A file goes to exactly one worker and is never handed to another: a worker can keep writing any
/// file it was given until it seals it, so only its own guest may ever read pages from it.
final class ResultFilePreparation: Sendable {
    private enum State {
        case idle
        case preparing
        case ready(FileDescriptor)
        case closed
    }

    private let state = Mutex<State>(.idle)
    private static let queue = DispatchQueue(label: "pagestate.result-files", qos: .utility, attributes: .concurrent)

    /// The prepared file, if one is ready (never waits for one being prepared).
    func take() -> FileDescriptor? {
        state.withLock { state in
            guard case .ready(let descriptor) = state else { return nil }
            state = .idle
            return descriptor
        }
    }

    /// Starts preparing a file for `pages` pages unless one is ready or being prepared.
    func prepare(pages: Int) {
        let start = state.withLock { state in
            guard case .idle = state else { return false }
            state = .preparing
            return true
        }
        guard start else { return }
        Self.queue.async { [self] in
            let file = try? SealedPageFile.prepare(pages: pages)
            let unwanted: FileDescriptor? = state.withLock { state in
                guard case .preparing = state else { return file }  // closed meanwhile
                state = file.map { .ready($0) } ?? .idle
                return nil
            }
            try? unwanted?.close()
        }
    }

    /// Closes a ready file and any file still being prepared; nothing is prepared afterwards.
    func close() {
        let ready: FileDescriptor? = state.withLock { state in
            defer { state = .closed }
            guard case .ready(let descriptor) = state else { return nil }
            return descriptor
        }
        try? ready?.close()
    }
}
