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

    /// Hashes the whole file at `path`.
    ///
    /// - Throws: `.system`, `.missingFile`, `.malformedFile` when it shrinks while being read.
    /// - Complexity: O(bytes).
    static func entry(name: String, path: FilePath) throws(StoreError) -> Manifest.File {
        let (file, size) = try openWithSize(path)
        defer { try? file.close() }
        let count = (Int(size) + Manifest.fileChunkBytes - 1) / Manifest.fileChunkBytes
        var chunks: [ContentHash] = []
        chunks.reserveCapacity(count)
        for chunk in 0..<count { chunks.append(try hash(chunk: chunk, of: file, size: size, path: path)) }
        return Manifest.File(name: name, size: size, chunks: chunks)
    }

    /// Checks every chunk of the file at `path` against `expected`.
    ///
    /// - Complexity: O(bytes).
    static func verify(path: FilePath, against expected: Manifest.File) throws(StoreError) {
        let file = try open(path, expecting: expected)
        defer { try? file.close() }
        for chunk in expected.chunks.indices { try verify(chunk: chunk, of: file, path: path, against: expected) }
    }

    /// Opens the file at `path` read-only after checking that its size is `expected`'s.
    ///
    /// - Throws: `.malformedFile` on another size, `.missingFile`, `.system`.
    static func open(_ path: FilePath, expecting expected: Manifest.File) throws(StoreError) -> FileDescriptor {
        let (file, size) = try openWithSize(path)
        guard size == expected.size else {
            try? file.close()
            throw .malformedFile(path: path.string, offset: min(size, expected.size), reason: "size \(size), manifest says \(expected.size)")
        }
        return file
    }

    /// Checks chunk `chunk` of `file` (opened with `open(_:expecting:)`) against `expected`.
    ///
    /// - Throws: `.hashMismatch` naming the chunk's offset, `.malformedFile` when the file shrank, `.system`.
    /// - Complexity: O(chunk bytes).
    static func verify(chunk: Int, of file: FileDescriptor, path: FilePath, against expected: Manifest.File) throws(StoreError) {
        guard try hash(chunk: chunk, of: file, size: expected.size, path: path) == expected.chunks[chunk] else {
            throw .hashMismatch(path: path.string, offset: UInt64(chunk * Manifest.fileChunkBytes))
        }
    }

    /// The number of bytes of chunk `chunk` of a file of `size` bytes.
    static func length(ofChunk chunk: Int, size: UInt64) -> Int {
        Int(min(UInt64(Manifest.fileChunkBytes), size - UInt64(chunk * Manifest.fileChunkBytes)))
    }

    /// The file at `path`, opened read-only, and its size; the caller closes it.
    private static func openWithSize(_ path: FilePath) throws(StoreError) -> (FileDescriptor, UInt64) {
        let file = try FileReading.open(path)
        do throws(StoreError) {
            return (file, try system("stat", path) { UInt64(try file.stat().size) })
        } catch {
            try? file.close()
            throw error
        }
    }

    /// The hash of chunk `chunk` (1 MiB, the last one shorter), read from the file.
    private static func hash(chunk: Int, of file: FileDescriptor, size: UInt64, path: FilePath) throws(StoreError) -> ContentHash {
        let offset = UInt64(chunk * Manifest.fileChunkBytes)
        return try FileReading.read(file, path: path, at: offset, count: length(ofChunk: chunk, size: size)).withUnsafeBytes { ContentHash.combining(blockHashes(of: $0)) }
    }
}
