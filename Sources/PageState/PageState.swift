// The module execution layers import: the memory layer and the kernel wrappers it is built on.
@_exported import PageStateKernel
@_exported import PageStateMemory
