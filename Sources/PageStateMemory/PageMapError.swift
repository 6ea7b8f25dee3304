/// Why a `PageMap` operation was refused.
public enum PageMapError: Error, Hashable, CustomStringConvertible {
    /// `address + count` does not fit in 64 bits.
    case addressOverflow(address: UInt64, count: Int)

    public var description: String {
        switch self {
        case .addressOverflow(let address, let count): "page map: range of \(count) bytes at \(address) overflows"
        }
    }
}
