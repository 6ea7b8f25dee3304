import Crypto
import SystemPackage

/// Computes and checks the manifest's per-file chunk hashes.
///
/// A file is cut into 1 MiB chunks and each chunk into 4 KiB blocks; a chunk's hash is the SHA-256
/// of its blocks' SHA-256 hashes. Every byte is covered, and an overlay's page blocks hash exactly
/// like the pages they came from, so the hashes computed while flushing serve both the file and the
/// memory parts of the manifest — each flushed byte is hashed once.
enum FileHashing {
    static let blockBytes = 4096
    static let blocksPerChunk = Manifest.fileChunkBytes / blockBytes

    /// The entry of a file of `size` bytes whose 4 KiB blocks hash to `blockHashes`.
    ///
    /// - Complexity: O(blocks).
    static func entry(name: String, size: UInt64, blockHashes: [ContentHash]) -> Manifest.File {
        let chunks = stride(from: 0, to: blockHashes.count, by: blocksPerChunk).map {
            ContentHash.combining(blockHashes[$0..<min($0 + blocksPerChunk, blockHashes.count)])
        }
        return Manifest.File(name: name, size: size, chunks: chunks)
    }

    /// The block hashes of `bytes`.
    ///
    /// - Complexity: O(bytes).
    static func blockHashes(of bytes: UnsafeRawBufferPointer) -> [ContentHash] {
        stride(from: 0, to: bytes.count, by: blockBytes).map {
            ContentHash.of(UnsafeRawBufferPointer(rebasing: bytes[$0..<min($0 + blockBytes, bytes.count)]))
        }
    }

    /// Hashes the file at `path`. When `previous` (the same immutable file's entry in the previous
    /// checkpoint) has the same size, its chunk hashes are reused, except those `reverify` selects,
    /// which are recomputed and must match.
    ///
    /// - Throws: `.hashMismatch` when a re-verified chunk changed, `.system`, `.missingFile`.
    /// - Complexity: O(bytes hashed): all of a new file, the re-verified chunks of a reused one.
    static func entry(name: String, path: FilePath, previous: Manifest.File?, reverify: (Int) -> Bool) throws(StoreError) -> Manifest.File {
        try withFile(path) { (file, size) throws(StoreError) in
            guard let previous, previous.size == size else {
                let count = (Int(size) + Manifest.fileChunkBytes - 1) / Manifest.fileChunkBytes
                var chunks: [ContentHash] = []
                chunks.reserveCapacity(count)
                for chunk in 0..<count { chunks.append(try hash(chunk: chunk, of: file, size: size, path: path)) }
                return Manifest.File(name: name, size: size, chunks: chunks)
            }
            for chunk in previous.chunks.indices where reverify(chunk) {
                guard try hash(chunk: chunk, of: file, size: size, path: path) == previous.chunks[chunk] else {
                    throw .hashMismatch(path: path.string, offset: UInt64(chunk * Manifest.fileChunkBytes))
                }
            }
            return Manifest.File(name: name, size: size, chunks: previous.chunks)
        }
    }

    /// Checks every chunk of the file at `path` against `expected`.
    ///
    /// - Complexity: O(bytes).
    static func verify(path: FilePath, against expected: Manifest.File) throws(StoreError) {
        try withFile(path) { (file, size) throws(StoreError) in
            guard size == expected.size else {
                throw .malformedFile(path: path.string, offset: min(size, expected.size), reason: "size \(size), manifest says \(expected.size)")
            }
            for (chunk, hash) in expected.chunks.enumerated() {
                guard try Self.hash(chunk: chunk, of: file, size: size, path: path) == hash else {
                    throw .hashMismatch(path: path.string, offset: UInt64(chunk * Manifest.fileChunkBytes))
                }
            }
        }
    }

    private static func withFile<R>(_ path: FilePath, _ body: (FileDescriptor, UInt64) throws(StoreError) -> R) throws(StoreError) -> R {
        let file = try FileReading.open(path)
        defer { try? file.close() }
        let size = try system("stat", path) { UInt64(try file.stat().size) }
        return try body(file, size)
    }

    /// The hash of chunk `chunk` (1 MiB, the last one shorter), read from the file.
    private static func hash(chunk: Int, of file: FileDescriptor, size: UInt64, path: FilePath) throws(StoreError) -> ContentHash {
        let offset = UInt64(chunk * Manifest.fileChunkBytes)
        let length = Int(min(UInt64(Manifest.fileChunkBytes), size - offset))
        return try FileReading.read(file, path: path, at: offset, count: length).withUnsafeBytes { ContentHash.combining(blockHashes(of: $0)) }
    }
}
