import Foundation
import PageState
import SystemPackage
import Testing

@Suite struct StateManagerExampleTests {
    /// Overlays in tip/ that no memory uses any more (a removed guest's) are deleted by the next flush,
    /// not left until a restart.
    @Test func flushRemovesTipOverlaysNoMemoryUses() throws {
        let directory = try TemporaryDirectory()
        var options = StateManager.Options()
        options.flushInBackground = false
        let manager = try StateManager(directory: directory.path, options: options)
        var state = ReplicatedState()
        var model = StateModel()
        for guest: GuestID in [1, 2] {
            try model.write(guest: guest, memory: "heap", address: 0, count: 100, fill: 1, state: &state, allocator: manager.allocator)
        }
        try manager.commit(height: 1, state: state)
        try manager.flush()
        let tip = directory.path.appending("tip").string
        #expect(try FileManager.default.contentsOfDirectory(atPath: tip).count == 2)
        state.guests[2] = nil
        try manager.commit(height: 2, state: state)
        try manager.flush()
        #expect(try FileManager.default.contentsOfDirectory(atPath: tip).count == 1)
    }

    /// A loaded layer whose file was removed behind the manager's back still maps its pages zero-copy
    /// (from a sealed copy of the mapped bytes), reading what the file held.
    @Test func fileRunsSurviveARemovedOverlay() throws {
        let directory = try TemporaryDirectory()
        _ = try makeCheckpoints(in: directory.path, heights: 1)
        let checkpoint = directory.path.appending("checkpoints").appending("00000000000000000001")
        let path = checkpoint.appending(try #require(try files(of: checkpoint).first { $0.hasSuffix(".ovl") }))
        let layer = try OverlayLayer(path: path)
        let expected = try #require(layer.bytes(ofPage: layer.pageRanges[0].lowerBound)).map { $0 }
        try FileManager.default.removeItem(atPath: path.string)
        let run = try #require(layer.fileRuns.first)
        var read = [UInt8](repeating: 0, count: Page.size)
        _ = try read.withUnsafeMutableBytes { try run.descriptor.read(fromAbsoluteOffset: Int64(run.offset), into: $0) }
        #expect(read == expected)
        #expect(try run.descriptor.seals().contains(.shrink))
    }
}

@Suite struct FailedFlushTests {
    /// A flush that fails part-way (its second overlay's name is taken) removes the overlay it did
    /// write, and loses nothing: chunks written by an earlier flush since the last checkpoint still
    /// reach the next checkpoint's root hash, which equals that of the committed contents.
    @Test func failedFlushRemovesItsFilesAndLeavesNoStaleHashes() throws {
        let directory = try TemporaryDirectory()
        var options = StateManager.Options()
        options.flushInBackground = false
        options.mergeAfterFlush = false
        let manager = try StateManager(directory: directory.path, options: options)
        var state = ReplicatedState()
        var model = StateModel()
        for memory in ["heap", "stable"] {
            try model.write(guest: 1, memory: memory, address: 0, count: 64 * Page.size, fill: 1, state: &state, allocator: manager.allocator)
        }
        try manager.commit(height: 1, state: state)
        try manager.checkpoint(height: 1)
        for (height, fill): (Height, UInt8) in [(2, 2), (3, 3)] {
            for memory in ["heap", "stable"] {
                try model.write(guest: 1, memory: memory, address: Int(fill) * 5 * Page.size, count: 3 * Page.size, fill: fill,
                                state: &state, allocator: manager.allocator)
            }
            try manager.commit(height: height, state: state)
        }
        try manager.flush()  // height 3: its chunks are dirty until the next checkpoint

        try model.write(guest: 1, memory: "heap", address: 40 * Page.size, count: Page.size, fill: 4, state: &state, allocator: manager.allocator)
        try model.write(guest: 1, memory: "stable", address: 50 * Page.size, count: Page.size, fill: 4, state: &state, allocator: manager.allocator)
        try manager.commit(height: 4, state: state)
        let tip = directory.path.appending("tip")
        let before = try files(of: tip)
        let highest = try #require(try (before + files(of: directory.path.appending("checkpoints").appending("00000000000000000001")))
            .compactMap { $0.hasSuffix(".ovl") ? UInt64($0.dropLast(4), radix: 16) : nil }.max())
        let digits = String(highest + 2, radix: 16)  // the stable memory's overlay, after the heap's
        let blockerName = String(repeating: "0", count: 16 - digits.count) + digits + ".ovl"
        #expect(FileManager.default.createFile(atPath: tip.appending(blockerName).string, contents: Data()))
        #expect(throws: StoreError.self) { try manager.checkpoint(height: 4) }
        #expect(try files(of: tip) == (before + [blockerName]).sorted(), "the heap's overlay of the failed flush is gone")

        let info = try manager.checkpoint(height: 4)
        #expect(info.rootHash == (try model.freshState(allocator: manager.allocator).rootHash))
        let loaded = try manager.load(height: 4, verification: .full)
        expectEqual(loaded.state, model, "height 4")
    }
}
