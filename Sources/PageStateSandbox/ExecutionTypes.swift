import PageStateMemory

/// What an execution may do to its guest's state.
public enum ExecutionKind: UInt8, Sendable, Hashable, CaseIterable {
    /// Tracked: the pages it writes become the guest's new state when it succeeds.
    case update = 1
    /// Untracked: runs against the current state and leaves no trace.
    case query = 2
}

/// Values fixed for one execution that a guest reads without asking the host.
public struct SystemData: Sendable, Hashable {
    public var guestID: UInt64
    public var caller: UInt64
    public var height: UInt64
    /// Nanoseconds since the epoch, as the execution layer decided for this round.
    public var time: UInt64

    public init(guestID: UInt64, caller: UInt64 = 0, height: UInt64 = 0, time: UInt64 = 0) {
        self.guestID = guestID
        self.caller = caller
        self.height = height
        self.time = time
    }
}

/// What one execution asks for.
public struct ExecutionRequest: Sendable, Hashable {
    public var entryPoint: String
    public var input: [UInt8]
    public var kind: ExecutionKind
    public var system: SystemData
    /// Pages the execution may grow its memories by, in total; growth beyond fails deterministically.
    public var memoryAllowancePages: UInt64
    /// Most pages one update may write (larger writes are rolled back and fail).
    public var dirtyPageLimit: UInt64

    public init(entryPoint: String, input: [UInt8] = [], kind: ExecutionKind, system: SystemData,
                memoryAllowancePages: UInt64 = 0, dirtyPageLimit: UInt64 = 1 << 20) {
        self.entryPoint = entryPoint
        self.input = input
        self.kind = kind
        self.system = system
        self.memoryAllowancePages = memoryAllowancePages
        self.dirtyPageLimit = dirtyPageLimit
    }
}

/// What a successful execution produced.
public struct ExecutionOutcome: Sendable {
    public var output: [UInt8]
    /// The pages an update changed in each memory (empty for queries), already adopted into the guest.
    public var heapDelta: PageDelta
    public var stableDelta: PageDelta
    /// Pages the memories grew by (charged against the allowance).
    public var grownPages: UInt64

    public init(output: [UInt8], heapDelta: PageDelta = PageDelta(), stableDelta: PageDelta = PageDelta(), grownPages: UInt64 = 0) {
        self.output = output
        self.heapDelta = heapDelta
        self.stableDelta = stableDelta
        self.grownPages = grownPages
    }
}
