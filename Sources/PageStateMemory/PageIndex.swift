/// The number of a 4 KiB page within a memory: byte address / `Page.size`.
public typealias PageIndex = UInt64
