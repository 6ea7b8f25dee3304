import PageStateMemory

/// One guest's state: its named memories and the small metadata the execution layer owns.
public struct GuestState: Sendable {
    /// Memories by name (at least "heap" and "stable" in a typical execution layer).
    public var memories: [String: PageMap]
    /// Opaque bytes the execution layer owns (for example a guest's configuration or balances).
    public var metadata: [UInt8]

    public init(memories: [String: PageMap] = [:], metadata: [UInt8] = []) {
        self.memories = memories
        self.metadata = metadata
    }
}

/// The state of every guest at one height. A value: copies are O(guests) and share all pages.
public struct ReplicatedState: Sendable {
    public var guests: [GuestID: GuestState]

    public init(guests: [GuestID: GuestState] = [:]) { self.guests = guests }

    /// Throws `StoreError.invalidMemoryName` for a name that cannot be stored.
    func validateNames() throws(StoreError) {
        for guest in guests.values {
            for name in guest.memories.keys where !MemoryName.isValid(name) { throw .invalidMemoryName(name) }
        }
    }
}
