import PageStateMemory

extension ReplicatedState {
    /// The root hash a checkpoint of this state records (see `Manifest`): a function of the guests,
    /// their metadata and the bytes of their memories only.
    ///
    /// - Complexity: O(bytes held) — every present page is hashed.
    public var rootHash: ContentHash { Manifest.encoding(height: 0, files: [], guests: manifestGuests()).manifest.rootHash }

    /// The state part of a manifest, every chunk hashed.
    func manifestGuests() -> [Manifest.Guest] {
        guests.keys.sorted().map { id in
            let guest = guests[id]!
            let names = guest.memories.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            return Manifest.Guest(
                id: id, metadataHash: guest.metadata.withUnsafeBytes { ContentHash.of($0) },
                memories: names.map { name in
                    let memory = guest.memories[name]!
                    var cache = PageHashCache()
                    return Manifest.Memory(name: name, sizeInPages: memory.sizeInPages, chunks: MemoryHashing.chunks(of: memory, cache: &cache))
                })
        }
    }
}
