// The module execution layers import: memory, tracking, the state manager, the sandbox, and the kernel wrappers they are built on.
@_exported import PageStateKernel
@_exported import PageStateMemory
@_exported import PageStateTracking
@_exported import PageStateStore
@_exported import PageStateSandbox
