import Dispatch
import SystemPackage

/// Re-hashes, on a background queue, the sampled chunks of files the next manifest reuses from the
/// previous one (`FileHashing.entry(name:path:previous:reverify:)`), so that reading them from the
/// device overlaps the checkpoint's own writes.
///
/// Invariant: `results` is written only by the background job and read only after `group.wait()`.
final class FileReverification: @unchecked Sendable {
    private let group = DispatchGroup()
    private var results: [String: Result<Manifest.File, StoreError>] = [:]

    /// Starts re-hashing each file at `paths` (by name) whose entry `previous` has, sampling the
    /// chunks `reverify` selects.
    init(_ paths: [String: FilePath], previous: Manifest?, reverify: @escaping @Sendable (Int) -> Bool) {
        guard let previous else { return }
        let files = paths.compactMap { name, path in previous.file(named: name).map { (name, path, $0) } }
        guard !files.isEmpty else { return }
        DispatchQueue.global().async(group: group) { [self] in
            for (name, path, entry) in files {
                results[name] = Result { () throws(StoreError) in
                    try FileHashing.entry(name: name, path: path, previous: entry, reverify: reverify)
                }
            }
        }
    }

    /// The entry of file `name`, once re-hashed; nil when it was not started.
    ///
    /// - Throws: what re-hashing it threw (`.hashMismatch` when a sampled chunk changed).
    func entry(named name: String) throws(StoreError) -> Manifest.File? {
        group.wait()
        return try results[name]?.get()
    }
}
