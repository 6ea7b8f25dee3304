import Crypto
import Foundation
import PageState
import SystemPackage
import Testing

/// Builds a directory with a few checkpoints of two guests.
func makeCheckpoints(in directory: FilePath, heights: Int = 3, writer: (any FileWriter)? = nil) throws -> [Height: StateModel] {
    var options = StateManager.Options()
    options.writer = writer
    options.flushInBackground = false
    let manager = try StateManager(directory: directory, options: options)
    var state = ReplicatedState()
    var model = StateModel()
    var models: [Height: StateModel] = [:]
    for height in 1...Height(heights) {
        for guest: GuestID in [7, 9] {
            try model.write(guest: guest, memory: "heap", address: Int(height) * 5000 + Int(guest), count: 9000,
                            fill: UInt8(height * 10 + guest), state: &state, allocator: manager.allocator)
            try model.write(guest: guest, memory: "stable", address: Int(guest) * 100, count: 100, fill: UInt8(height),
                            state: &state, allocator: manager.allocator)
        }
        state.guests[7]!.metadata = [UInt8(height)]
        model[7]!.metadata = [UInt8(height)]
        try manager.commit(height: height, state: state)
        try manager.checkpoint(height: height)
        models[height] = model
    }
    return models
}

func files(of checkpoint: FilePath) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: checkpoint.string).sorted()
}

@Suite struct CheckpointFileTests {
    /// Flipping a byte anywhere in any file of the newest checkpoint: `verify` names the file, a full
    /// load fails with a typed error naming it, and the fallback loads the newest intact checkpoint.
    @Test func everyFlippedByteIsDetected() throws {
        let directory = try TemporaryDirectory()
        let models = try makeCheckpoints(in: directory.path)
        let newest = directory.path.appending("checkpoints").appending("00000000000000000003")
        var random = SystemRandomNumberGenerator()
        for name in try files(of: newest) {
            let path = newest.appending(name)
            let size = try FileManager.default.attributesOfItem(atPath: path.string)[.size] as! Int
            // First, last and some random bytes of every file.
            for offset in Set([0, size - 1] + (0..<6).map { _ in Int.random(in: 0..<size, using: &random) }) {
                try flipByte(at: offset, of: path)
                defer { try? flipByte(at: offset, of: path) }
                let results = try StateVerifier.verify(directory: directory.path)
                let damaged = results.filter { $0.error != nil }
                // Overlays are hard links shared with older checkpoints, so those may be damaged too.
                #expect(damaged.contains { $0.height == 3 }, "\(name) byte \(offset) undetected")
                #expect(damaged.allSatisfy { $0.error?.path?.hasSuffix(name) ?? false }, "\(name) byte \(offset): \(damaged)")
                let manager = try StateManager(directory: directory.path)
                #expect(throws: StoreError.self, "\(name) byte \(offset)") { try manager.load(verification: .full) }
                // Overlays are shared (hard-linked) by the checkpoints that contain them, so the newest
                // intact checkpoint may be older than 2, or none may be left.
                if let intact = results.filter({ $0.error == nil }).map(\.height).max() {
                    let fallback = try manager.load(verification: .full, fallBackToIntact: true)
                    #expect(fallback.height == intact && !fallback.skipped.isEmpty)
                    expectEqual(fallback.state, models[intact]!, "fallback to \(intact)")
                } else {
                    #expect(throws: StoreError.self) { try manager.load(verification: .full, fallBackToIntact: true) }
                }
            }
        }
        #expect(try StateVerifier.verify(directory: directory.path).allSatisfy { $0.error == nil })
    }

    /// Malformed overlays — truncated, overlapping or out-of-range index entries, wrong checksum,
    /// wrong magic — are rejected with the file and offset named.
    @Test func malformedOverlaysAreRejected() throws {
        let directory = try TemporaryDirectory()
        _ = try makeCheckpoints(in: directory.path, heights: 1)
        let checkpoint = directory.path.appending("checkpoints").appending("00000000000000000001")
        let overlay = checkpoint.appending(try #require(try files(of: checkpoint).first { $0.hasSuffix(".ovl") }))
        let original = try Data(contentsOf: URL(fileURLWithPath: overlay.string))
        let copy = directory.path.appending("copy.ovl")
        func check(_ bytes: Data, _ what: String) {
            try? FileManager.default.removeItem(atPath: copy.string)
            _ = FileManager.default.createFile(atPath: copy.string, contents: bytes)
            do {
                _ = try OverlayLayer(path: copy)
                Issue.record("\(what): accepted")
            } catch .malformedFile(let path, let offset, let reason) {
                #expect(path == copy.string && offset <= UInt64(bytes.count), "\(what): \(offset) \(reason)")
            } catch {
                Issue.record("\(what): \(error)")
            }
        }
        #expect(try OverlayLayer(path: overlay).storedPages > 0)
        check(original.prefix(original.count - 1), "truncated by a byte")
        check(original.prefix(10), "truncated to 10 bytes")
        check(Data(), "empty")
        check(original.dropFirst(4096), "first page missing")
        var wrongMagic = original
        wrongMagic[original.count - 64] ^= 1
        check(wrongMagic, "magic")
        var wrongChecksum = original
        wrongChecksum[original.count - 1] ^= 1
        check(wrongChecksum, "checksum")
        // Index entries rewritten with a valid checksum, so the range checks themselves are exercised.
        let stored = Int(original.count - 64) / 4096
        let pages = UInt64(stored)
        let cases: [([(UInt64, UInt64)], String)] = [
            ([(0, pages), (0, 1)], "overlapping"), ([(1 << 60, pages)], "out of range"),
            ([(5, pages + 1)], "more pages than stored"), ([(5, 0)], "empty range"),
        ]
        for (ranges, what) in cases {
            check(rewriteIndex(original, stored: stored, ranges: ranges), what)
        }
    }

    /// Pages then a freshly checksummed trailer with `ranges`.
    func rewriteIndex(_ original: Data, stored: Int, ranges: [(UInt64, UInt64)]) -> Data {
        var trailer = Data()
        func append(_ value: some FixedWidthInteger) { withUnsafeBytes(of: value.littleEndian) { trailer.append(contentsOf: $0) } }
        for (first, count) in ranges { append(first); append(count) }
        trailer.append(contentsOf: Array("PSOVRLY1".utf8))
        append(UInt32(1)); append(UInt32(0)); append(UInt64(stored)); append(UInt64(ranges.count))
        trailer.append(contentsOf: Array(SHA256.hash(data: trailer)))
        return original.prefix(stored * 4096) + trailer
    }

    /// The same history written through io_uring and through pwrite produces byte-identical files.
    @Test(.enabled(if: (try? FileWriters.make(.ioUring)) != nil, "needs io_uring (absent or disabled by kernel.io_uring_disabled)"))
    func writersProduceIdenticalCheckpoints() throws {
        let uring = try FileWriters.make(.ioUring)
        let a = try TemporaryDirectory()
        let b = try TemporaryDirectory()
        _ = try makeCheckpoints(in: a.path, writer: uring)
        _ = try makeCheckpoints(in: b.path, writer: try FileWriters.make(.pwrite))
        for height in ["00000000000000000001", "00000000000000000003"] {
            let left = a.path.appending("checkpoints").appending(height)
            let right = b.path.appending("checkpoints").appending(height)
            #expect(try files(of: left) == files(of: right))
            for name in try files(of: left) {
                let leftBytes = try Data(contentsOf: URL(fileURLWithPath: left.appending(name).string))
                let rightBytes = try Data(contentsOf: URL(fileURLWithPath: right.appending(name).string))
                #expect(!leftBytes.isEmpty && leftBytes == rightBytes, "\(height)/\(name)")
            }
        }
    }
}

func flipByte(at offset: Int, of path: FilePath) throws {
    let fd = try FileDescriptor.open(path, .readWrite)
    defer { try? fd.close() }
    var byte: UInt8 = 0
    _ = try withUnsafeMutableBytes(of: &byte) { try fd.read(fromAbsoluteOffset: Int64(offset), into: $0) }
    byte ^= 0x20
    _ = try withUnsafeBytes(of: &byte) { try fd.write(toAbsoluteOffset: Int64(offset), $0) }
}
