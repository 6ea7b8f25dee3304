/// A version of the replicated state; commits use strictly increasing heights.
public typealias Height = UInt64

/// Identifies a guest within the replicated state.
public typealias GuestID = UInt64
