import PageStateMemory
import SystemPackage

/// How much of a checkpoint to check when loading it.
public enum Verification: Sendable, Hashable {
    /// O(files): STATE and MANIFEST checksums and hashes, every overlay's index and footer checksum,
    /// file sizes, and agreement between STATE, MANIFEST and the overlays. Page bytes are not read.
    case structure
    /// Also re-hashes every byte of every file against the manifest: O(bytes).
    case full
}

/// Reads a checkpoint directory and checks it, without trusting any of its bytes.
struct CheckpointReader {
    let directory: FilePath
    let height: Height
    let state: StateFile
    let manifest: Manifest

    /// Reads STATE and MANIFEST and checks they agree with each other and with the directory name.
    ///
    /// - Complexity: O(size of STATE and MANIFEST).
    init(layout: StateDirectory, height: Height) throws(StoreError) {
        directory = layout.checkpoint(height)
        self.height = height
        let manifestPath = directory.appending(Manifest.name)
        let manifest = try layout.read(manifestPath).withBytes { (bytes) throws(StoreError) in
            try Manifest(path: manifestPath.string, bytes: bytes)
        }
        let statePath = directory.appending(StateFile.name)
        let stateBytes = try layout.read(statePath)
        guard let stateEntry = manifest.file(named: StateFile.name) else {
            throw .malformedFile(path: manifestPath.string, offset: 0, reason: "no entry for STATE")
        }
        try FileHashing.verify(path: statePath, against: stateEntry)
        let state = try stateBytes.withBytes { (bytes) throws(StoreError) in try StateFile(path: statePath.string, bytes: bytes) }
        guard manifest.height == height, state.height == height else {
            throw .malformedFile(path: manifestPath.string, offset: 16, reason: "height \(manifest.height)/\(state.height) in a checkpoint named \(height)")
        }
        let expectedFiles = Set([StateFile.name] + state.overlayIDs.map(StateDirectory.overlayName))
        guard Set(manifest.files.map(\.name)) == expectedFiles, manifest.files.count == expectedFiles.count else {
            throw .malformedFile(path: manifestPath.string, offset: 0, reason: "file list differs from the overlays STATE names")
        }
        guard manifest.guests.count == state.guests.count else {
            throw .malformedFile(path: manifestPath.string, offset: 0, reason: "guest list differs from STATE")
        }
        for (guest, hashes) in zip(state.guests, manifest.guests) {
            guard guest.id == hashes.id, guest.memories.map(\.name) == hashes.memories.map(\.name),
                  guest.memories.map(\.sizeInPages) == hashes.memories.map(\.sizeInPages),
                  guest.metadata.withUnsafeBytes({ ContentHash.of($0) }) == hashes.metadataHash
            else {
                throw .malformedFile(path: manifestPath.string, offset: 0, reason: "guest \(guest.id) differs between STATE and MANIFEST")
            }
        }
        self.state = state
        self.manifest = manifest
    }

    func path(ofOverlay id: UInt64) -> FilePath { directory.appending(StateDirectory.overlayName(id)) }

    /// Opens every overlay (checking index, footer and size against the manifest; with `.full`,
    /// every byte) and builds the memories. Layers keep `pin`.
    ///
    /// - Complexity: O(files) for `.structure`, O(bytes) for `.full`.
    func load(allocator: PageAllocator, verification: Verification, pin: AnyObject?) throws(StoreError) -> (ReplicatedState, [GuestID: [String: [OverlayLayer]]]) {
        var replicated = ReplicatedState()
        var layersByMemory: [GuestID: [String: [OverlayLayer]]] = [:]
        for guest in state.guests {
            var memories: [String: PageMap] = [:]
            for memory in guest.memories {
                var layers: [OverlayLayer] = []
                for id in memory.overlays {
                    let path = path(ofOverlay: id)
                    let entry = manifest.file(named: StateDirectory.overlayName(id))!  // the file lists were compared
                    if verification == .full { try FileHashing.verify(path: path, against: entry) }
                    let layer: OverlayLayer
                    do { layer = try OverlayLayer(path: path, retaining: pin) } catch .system(_, _, .noSuchFileOrDirectory) {
                        throw .missingFile(path: path.string)
                    }
                    guard layer.fileSize == entry.size else {
                        throw .malformedFile(path: path.string, offset: min(layer.fileSize, entry.size), reason: "size \(layer.fileSize), manifest says \(entry.size)")
                    }
                    guard layer.pageCount <= memory.sizeInPages else {
                        throw .malformedFile(path: path.string, offset: 0, reason: "pages beyond the memory's \(memory.sizeInPages) pages")
                    }
                    layers.append(layer)
                }
                var map = PageMap(allocator: allocator, layers: layers)
                map.grow(toPages: memory.sizeInPages)
                memories[memory.name] = map
                layersByMemory[guest.id, default: [:]][memory.name] = layers
            }
            replicated.guests[guest.id] = GuestState(memories: memories, metadata: guest.metadata)
        }
        return (replicated, layersByMemory)
    }
}
