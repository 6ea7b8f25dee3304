import Crypto

/// A SHA-256 digest: of a 4 KiB block, a file chunk, a file, a memory chunk, or the whole state.
/// Stored inline (no allocation), so millions of page hashes can be cached cheaply.
public struct ContentHash: Hashable, Sendable, CustomStringConvertible {
    private var words: (UInt64, UInt64, UInt64, UInt64)

    init(_ bytes: some Sequence<UInt8>) {
        words = (0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &words) { target in
            for (offset, byte) in bytes.enumerated() where offset < 32 {
                target[offset] = byte
                count += 1
            }
        }
        precondition(count == 32, "a SHA-256 digest has 32 bytes")
    }

    init(_ digest: SHA256Digest) {
        words = (0, 0, 0, 0)
        digest.withUnsafeBytes { source in withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: source) } }
    }

    /// The SHA-256 of `data`.
    static func of(_ data: UnsafeRawBufferPointer) -> ContentHash { ContentHash(SHA256.hash(data: data)) }

    /// The SHA-256 of the concatenation of `hashes`: how chunk hashes are built from block hashes.
    static func combining(_ hashes: some Sequence<ContentHash>) -> ContentHash {
        var hasher = SHA256()
        for hash in hashes { hash.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
        return ContentHash(hasher.finalize())
    }

    /// The digest's 32 bytes.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with the digest's 32 bytes, without copying them.
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { Swift.withUnsafeBytes(of: words, body) }

    public static func == (a: ContentHash, b: ContentHash) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }

    /// Lowercase hexadecimal.
    public var description: String {
        bytes.map { byte in String(byte >> 4, radix: 16) + String(byte & 15, radix: 16) }.joined()
    }
}
