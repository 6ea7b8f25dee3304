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
