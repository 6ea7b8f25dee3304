import Foundation
import PageStateKernel
import PageStateMemory
import SystemPackage

extension StateManager {
    /// Makes committed height `height` a durable checkpoint and returns when it is: the overlays are
    /// flushed and synced, the checkpoint is assembled in scratch/ (hard links to the overlays, STATE,
    /// MANIFEST, each synced, then the directory), renamed into checkpoints/, and checkpoints/ synced.
    /// A crash at any moment leaves either the complete checkpoint or none.
    ///
    /// Committed heights below `height` are dropped from memory afterwards.
    ///
    /// - Throws: `.notCommitted`; an error a background flush hit since the last checkpoint;
    ///   `.hashMismatch` or `.malformedFile` when a re-verified reused file changed on disk; `.system`.
    /// - Complexity: O(pages changed since the last flush + files + bytes hashed), where the hashed
    ///   bytes are the new files, `reverifyFraction` of them in reused files and the changed 64 KiB chunks.
    @discardableResult
    public func checkpoint(height: Height) throws(StoreError) -> CheckpointInfo {
        let (state, backgroundError) = commits.withLock { commits in
            defer { commits.backgroundError = nil }
            return (commits.states[height], commits.backgroundError)
        }
        if let backgroundError { throw backgroundError }
        guard let state else { throw .notCommitted(height) }
        let info = try tip.withLock { (tip) throws(StoreError) in
            // Files the previous checkpoint holds are re-verified while the flush writes new ones.
            let reverification = startReverification(tip)
            defer { _ = reverification?.finish() }  // on every path: the job waits for allowance until then
            try flush(&tip, to: state, height: height, pacing: reverification)
            return try writeCheckpoint(&tip, state: state, height: height, reverification: reverification)
        }
        commits.withLock { commits in commits.states = commits.states.filter { $0.key >= height } }
        return info
    }

    private func writeCheckpoint(_ tip: inout Tip, state: ReplicatedState, height: Height,
                                 reverification: FileReverification?) throws(StoreError) -> CheckpointInfo {
        let scratch = layout.scratch.appending("checkpoint-\(StateDirectory.name(of: height))")
        if (try? layout.entries(of: scratch)) != nil { try layout.removeTree(scratch) }
        try system("mkdir", scratch) { try makeDirectory(scratch) }
        let guests = state.guests.keys.sorted()
        var stateGuests: [StateFile.Guest] = []
        var references: [OverlayReference] = []
        for guest in guests {
            let memories = state.guests[guest]!.memories.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            stateGuests.append(StateFile.Guest(id: guest, metadata: state.guests[guest]!.metadata, memories: memories.map { name in
                let record = tip.records[guest]![name]!
                references += record.overlays
                return StateFile.Memory(name: name, sizeInPages: record.sizeInPages, overlays: record.overlays.map(\.id))
            }))
        }
        for reference in references {
            let link = scratch.appending(StateDirectory.overlayName(reference.id))
            try system("link", reference.path) { try hardLink(reference.path, to: link) }
        }
        step(.checkpointLinked)
        let stateFile = StateFile(height: height, guests: stateGuests)
        try layout.writeNew(scratch.appending(StateFile.name), bytes: stateFile.encoded(), writer: writer)  // hashed from memory below
        step(.stateWritten)
        let (manifest, manifestBytes) = try buildManifest(&tip, state: state, stateFile: stateFile, in: scratch, height: height)
        let reverified = reverification?.finish()
        if let reverified {
            tip.reverificationStart = reverified.next
            if let failure = reverified.failure { throw failure }
        }
        try layout.writeNew(scratch.appending(Manifest.name), bytes: manifestBytes, writer: writer)
        step(.manifestWritten)
        try layout.sync(scratch, writer: writer)
        step(.checkpointSynced)
        let destination = layout.checkpoint(height)
        try system("rename", destination) { try renameEntry(scratch, to: destination) }
        step(.checkpointRenamed)
        try layout.sync(layout.checkpoints, writer: writer)
        step(.checkpointPublished)
        adopt(&tip, checkpoint: destination, height: height, manifest: manifest)
        return CheckpointInfo(height: height, rootHash: manifest.rootHash, overlayFiles: references.count,
                              overlayBytes: manifest.files.filter { $0.name != StateFile.name }.reduce(0) { $0 + $1.size },
                              reverifiedBytes: reverified?.verifiedBytes ?? 0)
    }

    /// The manifest and its bytes: file hashes (reusing the previous checkpoint's for the same
    /// overlays) and memory chunk hashes (recomputing only chunks written since).
    private func buildManifest(_ tip: inout Tip, state: ReplicatedState, stateFile: StateFile, in directory: FilePath,
                               height: Height) throws(StoreError) -> (Manifest, [UInt8]) {
        let references = Dictionary(tip.records.values.flatMap { $0.values.flatMap(\.overlays) }.map { ($0.id, $0) }) { a, _ in a }
        let stateBytes = stateFile.encoded()
        var files = [stateBytes.withUnsafeBytes {
            FileHashing.entry(name: StateFile.name, size: UInt64($0.count), blockHashes: FileHashing.blockHashes(of: $0))
        }]
        for id in stateFile.overlayIDs {
            let name = StateDirectory.overlayName(id)
            // Written since the last checkpoint: hashed while writing. Otherwise the previous manifest's
            // entry (overlays are immutable and never renamed; some of them are being re-verified).
            if let entry = references[id]?.entry ?? tip.previousManifest?.file(named: name) {
                files.append(entry)
            } else {
                files.append(try FileHashing.entry(name: name, path: directory.appending(name)))
            }
        }
        var guests: [Manifest.Guest] = []
        for guest in stateFile.guests {
            let guestState = state.guests[guest.id]!
            let memories = guest.memories.map { entry in
                let chunks = tip.records[guest.id]![entry.name]!.updateChunks(of: guestState.memories[entry.name]!)
                return Manifest.Memory(name: entry.name, sizeInPages: entry.sizeInPages, chunks: chunks)
            }
            guests.append(Manifest.Guest(id: guest.id, metadataHash: guest.metadata.withUnsafeBytes { ContentHash.of($0) }, memories: memories))
        }
        return Manifest.encoding(height: height, files: files, guests: guests)
    }

    /// Starts re-verifying the overlays the previous checkpoint's manifest records, paced by the
    /// overlays written since (and, through `flush`, those the checkpoint writes); nil when off.
    private func startReverification(_ tip: Tip) -> FileReverification? {
        guard options.reverifyFraction > 0, let previous = tip.previousManifest else { return nil }
        let overlays = tip.records.values.flatMap { $0.values.flatMap(\.overlays) }
        let reused = overlays.compactMap { reference in
            previous.file(named: StateDirectory.overlayName(reference.id)).map {
                FileReverification.Reused(id: reference.id, path: reference.path, entry: $0)
            }
        }
        let written = overlays.reduce(0) { $0 + ($1.entry?.size ?? 0) }
        return FileReverification(Array(Dictionary(reused.map { ($0.id, $0) }) { a, _ in a }.values),
                                  from: tip.reverificationStart, fraction: options.reverifyFraction, written: written)
    }

    /// After publishing: records point at the checkpoint's links, the tip's names go.
    private func adopt(_ tip: inout Tip, checkpoint: FilePath, height: Height, manifest: Manifest) {
        for (guest, memories) in tip.records {
            for (name, record) in memories {
                tip.records[guest]![name]!.overlays = record.overlays.map { reference in
                    if reference.path.removingLastComponent() == layout.tip { try? removeFileEntry(reference.path) }
                    var moved = reference
                    moved.path = checkpoint.appending(StateDirectory.overlayName(reference.id))
                    moved.entry = nil  // the manifest has it now
                    return moved
                }
            }
        }
        tip.previousManifest = manifest
        tip.baseCheckpoint = height
    }
}
