import Foundation
import PageState
import PropertyChecking
import SystemPackage
import Testing

/// A state built by a few checkpoints, then one byte of one of its overlays damaged on disk.
struct DamagedOverlayCase: CustomStringConvertible, Sendable {
    /// Pages of the heap each initial checkpoint rewrites (from page 0), one overlay each.
    var checkpointPages: [Int]
    /// Which overlay of the last initial checkpoint is damaged (modulo their number).
    var damagedOverlay: Int
    /// Which byte of it (modulo its size).
    var damagedByte: Int
    /// Index into `fractions`.
    var fractionIndex: Int

    /// The `reverifyFraction`s tried: one chunk per checkpoint, a quarter, all of the written bytes,
    /// every reused chunk, off.
    static let fractions: [Double] = [1e-12, 0.25, 1, .infinity, 0]

    var fraction: Double { Self.fractions[fractionIndex] }

    static let generator = zip(Gen.int(in: 1...700).array(of: 1...3), Gen.int(in: 0...5), Gen.int(in: 0...(1 << 30)),
                               Gen.int(in: 0...(fractions.count - 1)))
        .map { DamagedOverlayCase(checkpointPages: $0, damagedOverlay: $1, damagedByte: $2, fractionIndex: $3) }

    var description: String {
        "pages \(checkpointPages), overlay \(damagedOverlay), byte \(damagedByte), fraction \(fraction)"
    }
}

@Suite struct ReverificationTests {
    /// A byte flipped in a reused overlay fails a later checkpoint — naming the file and the damaged
    /// 1 MiB chunk — within two rounds over the reused chunks at one chunk per checkpoint (at the first
    /// one when every reused chunk is checked), and every checkpoint after it too; no checkpoint
    /// re-verifies more than its share of what it writes plus one chunk. Re-verification off: none fails.
    @Test(.shrinking)
    func damagedReusedOverlaysFailCheckpoints() async throws {
        await checkProperty(count: 60, input: DamagedOverlayCase.generator) { damage in
            do { try Self.run(damage) } catch {
                print("re-verification case failed: \(error)")  // the property checker reports only the input
                Issue.record("\(error)")
            }
        }
    }

    static func run(_ damage: DamagedOverlayCase) throws {
        let directory = try TemporaryDirectory()
        var options = StateManager.Options()
        options.flushInBackground = false
        options.reverifyFraction = damage.fraction
        let manager = try StateManager(directory: directory.path, options: options)
        var heap = PageMap(allocator: manager.allocator)
        var height: Height = 0
        func checkpoint(pages: Int) throws -> StateManager.CheckpointInfo {
            height += 1
            for page in 0..<pages {
                try heap.write([UInt8(truncatingIfNeeded: height), UInt8(truncatingIfNeeded: page)], at: UInt64(page * Page.size))
            }
            try manager.commit(height: height, state: ReplicatedState(guests: [1: GuestState(memories: ["heap": heap])]))
            return try manager.checkpoint(height: height)
        }
        for pages in damage.checkpointPages { _ = try checkpoint(pages: pages) }

        let newest = directory.path.appending("checkpoints").appending(String(format: "%020llu", height))
        let overlays = try files(of: newest).filter { $0.hasSuffix(".ovl") }
        let reused = try overlays.map { name in
            (name, try FileManager.default.attributesOfItem(atPath: newest.appending(name).string)[.size] as! Int)
        }
        let (damagedName, damagedSize) = reused[damage.damagedOverlay % reused.count]
        let damagedByte = damage.damagedByte % damagedSize
        try flipByte(at: damagedByte, of: newest.appending(damagedName))
        let chunkBytes = 1 << 20
        let reusedChunks = reused.reduce(0) { $0 + ($1.1 + chunkBytes - 1) / chunkBytes }
        let reusedBytes = reused.reduce(0) { $0 + $1.1 }

        // Each later checkpoint writes one page (an overlay of under 8 KiB).
        var failure: StoreError?
        for step in 1...(2 * reusedChunks + 1) {
            do {
                let info = try checkpoint(pages: 1)
                if damage.fraction == 0 {
                    #expect(info.reverifiedBytes == 0, "step \(step): re-verification is off")
                } else if damage.fraction.isFinite {
                    #expect(info.reverifiedBytes > 0 && info.reverifiedBytes <= UInt64(chunkBytes) + UInt64(damage.fraction * 8192),
                            "step \(step): re-verified \(info.reverifiedBytes) bytes")
                }
                #expect(damage.fraction.isFinite, "step \(step): every reused chunk is checked, yet the damage was missed")
            } catch let error as StoreError {
                failure = error
                break
            }
        }
        guard damage.fraction != 0 else {
            #expect(failure == nil, "re-verification is off, yet a checkpoint failed: \(String(describing: failure))")
            return
        }
        // Named by its link in the newest checkpoint that holds it.
        func isTheDamage(_ error: StoreError?) -> Bool {
            guard case .hashMismatch(let path, let offset) = error else { return false }
            return FilePath(path).lastComponent?.string == damagedName && offset == UInt64(damagedByte / chunkBytes * chunkBytes)
        }
        #expect(isTheDamage(failure), "\(String(describing: failure)); \(damagedName) byte \(damagedByte), reused bytes \(reusedBytes)")
        // Until the file is repaired, checkpoints keep failing on it, whatever else they check first.
        for _ in 0..<2 {
            #expect(performing: { _ = try checkpoint(pages: 1) }, throws: { isTheDamage($0 as? StoreError) })
        }
        try flipByte(at: damagedByte, of: newest.appending(damagedName))
        #expect(throws: Never.self) { _ = try checkpoint(pages: 1) }
    }

    /// A merge whose sources include a damaged overlay of the last checkpoint fails naming it and
    /// leaves the files as they were, instead of writing a merged file hashed from the damage; once
    /// repaired, the same merge goes through and the state reads as written.
    @Test func mergeRefusesADamagedSource() throws {
        let directory = try TemporaryDirectory()
        var options = StateManager.Options()
        options.flushInBackground = false
        let manager = try StateManager(directory: directory.path, options: options)
        var heap = PageMap(allocator: manager.allocator)
        // 10 pages at height 1 (checkpointed), then 20 more: the pyramid merges the two overlays.
        for page in 0..<10 { try heap.write([1, UInt8(page)], at: UInt64(page * Page.size)) }
        try manager.commit(height: 1, state: ReplicatedState(guests: [1: GuestState(memories: ["heap": heap])]))
        try manager.checkpoint(height: 1)
        let checkpoint = directory.path.appending("checkpoints").appending(String(format: "%020llu", 1))
        let overlay = try #require(try files(of: checkpoint).first { $0.hasSuffix(".ovl") })
        try flipByte(at: 5 * Page.size + 1, of: checkpoint.appending(overlay))
        for page in 10..<30 { try heap.write([2, UInt8(page)], at: UInt64(page * Page.size)) }
        try manager.commit(height: 2, state: ReplicatedState(guests: [1: GuestState(memories: ["heap": heap])]))
        let tip = directory.path.appending("tip")
        #expect(throws: StoreError.hashMismatch(path: checkpoint.appending(overlay).string, offset: 0)) { try manager.flush() }
        let overlaysBefore = try files(of: tip)
        #expect(overlaysBefore.count == 1, "the flush's overlay only, no merged file: \(overlaysBefore)")
        #expect(throws: StoreError.self) { try manager.merge() }
        #expect(try files(of: tip) == overlaysBefore)

        try flipByte(at: 5 * Page.size + 1, of: checkpoint.appending(overlay))
        try manager.merge()
        #expect(try files(of: tip).count == 1 && files(of: tip) != overlaysBefore, "merged into one new file")
        try manager.checkpoint(height: 2)
        #expect(try StateVerifier.verify(directory: directory.path).allSatisfy { $0.error == nil })
        let loaded = try manager.load(verification: .full).state.guests[1]!.memories["heap"]!
        #expect(try loaded.read(at: UInt64(5 * Page.size), count: 2) == [1, 5])
        #expect(try loaded.read(at: UInt64(20 * Page.size), count: 2) == [2, 20])
    }

    /// With `reverifyFraction = .infinity` each checkpoint reads back every byte of the overlays it
    /// reuses; with the default, a quarter of what it writes plus at most one chunk.
    @Test func reverifiedBytesFollowTheFraction() throws {
        for fraction in [Double.infinity, 0.25] {
            let directory = try TemporaryDirectory()
            var options = StateManager.Options()
            options.flushInBackground = false
            options.reverifyFraction = fraction
            let manager = try StateManager(directory: directory.path, options: options)
            var heap = PageMap(allocator: manager.allocator)
            var reusedBytes: UInt64 = 0
            for height: Height in 1...4 {
                // 3 MiB at height 1, then 1 MiB more at each height after it.
                let pages = height == 1 ? 0..<768 : (768 + Int(height) * 256)..<(1024 + Int(height) * 256)
                for page in pages { try heap.write([UInt8(height)], at: UInt64(page * Page.size)) }
                try manager.commit(height: height, state: ReplicatedState(guests: [1: GuestState(memories: ["heap": heap])]))
                let info = try manager.checkpoint(height: height)
                if fraction.isInfinite {
                    #expect(info.reverifiedBytes == reusedBytes, "height \(height)")
                } else if height > 1 {
                    let share = UInt64(Double(pages.count * Page.size) * fraction)
                    #expect(info.reverifiedBytes >= share && info.reverifiedBytes <= share + (1 << 20), "height \(height): \(info.reverifiedBytes)")
                }
                reusedBytes = info.overlayBytes
            }
        }
    }
}
