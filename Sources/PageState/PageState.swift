// The module execution layers import: memory, tracking, and the kernel wrappers they are built on.
@_exported import PageStateKernel
@_exported import PageStateMemory
@_exported import PageStateTracking
