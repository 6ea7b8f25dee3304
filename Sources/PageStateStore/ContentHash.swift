import Crypto

/// A SHA-256 digest: of a file chunk, a file, a memory chunk, or the whole state.
public struct ContentHash: Hashable, Sendable, CustomStringConvertible {
    /// The digest's 32 bytes.
    public let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest has 32 bytes")
        self.bytes = bytes
    }

    init(_ digest: SHA256Digest) { self.init(Array(digest)) }

    /// The SHA-256 of `data`.
    static func of(_ data: UnsafeRawBufferPointer) -> ContentHash { ContentHash(SHA256.hash(data: data)) }

    /// Lowercase hexadecimal.
    public var description: String { bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
