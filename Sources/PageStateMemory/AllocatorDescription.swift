import SystemPackage

/// What another process needs to attach an allocator: its file, its identity and how much of the
/// file is in use. The descriptor travels separately, as SCM_RIGHTS.
public struct AllocatorDescription: Sendable, Hashable {
    public var descriptor: FileDescriptor
    public var identity: UInt64
    /// Bytes of the file in use: always a chunk boundary.
    public var length: UInt64

    public init(descriptor: FileDescriptor, identity: UInt64, length: UInt64) {
        self.descriptor = descriptor
        self.identity = identity
        self.length = length
    }
}
