/// Everything an entry point sees of one execution: its input, the static system data, the guest's
/// memories (served locally) and the host-call channel (the only way to reach the host).
public final class ExecutionContext {
    public let input: [UInt8]
    public let kind: ExecutionKind
    public let system: SystemData
    public let heap: GuestMemory
    public let stable: GuestMemory
    private let hostCallHandler: ([UInt8]) throws(ExecutionError) -> [UInt8]
    /// Added to the file offset of every page a sandboxed update reports (0: where it was written).
    /// Only for the hostile-guest tests, which play a compromised worker reporting pages at places
    /// it does not own: the host must reject them (`ExecutionError.rejectedPages`). In-process
    /// executions ignore it.
    @_spi(HostileGuests) public var reportedOffsetShift: UInt64 = 0

    init(input: [UInt8], kind: ExecutionKind, system: SystemData, heap: GuestMemory, stable: GuestMemory,
         hostCall: @escaping ([UInt8]) throws(ExecutionError) -> [UInt8]) {
        self.input = input
        self.kind = kind
        self.system = system
        self.heap = heap
        self.stable = stable
        hostCallHandler = hostCall
    }

    /// Asks the host (one round trip over the worker's socket when sandboxed; a direct call in-process).
    public func hostCall(_ request: [UInt8]) throws(ExecutionError) -> [UInt8] { try hostCallHandler(request) }
}

/// An entry point: runs against the context and returns the execution's output. Throwing ends the
/// execution without changing state; the error's description becomes `ExecutionError.trapped`.
public typealias EntryPoint = @Sendable (ExecutionContext) throws -> [UInt8]

/// The named entry points a worker executable (or the in-process executor) can run.
public struct WorkerRuntime: Sendable {
    private var entryPoints: [String: EntryPoint] = [:]

    public init() {}

    public mutating func register(_ name: String, _ body: @escaping EntryPoint) {
        entryPoints[name] = body
    }

    public func entryPoint(named name: String) -> EntryPoint? { entryPoints[name] }
}
