import PageState
import PropertyChecking
import Testing

/// One step of a random allocator history.
enum AllocatorOperation: CustomStringConvertible, Sendable {
    case allocate(fill: UInt8)
    case release(Int)
    case resolveLive(Int)
    case resolveReleased(Int)
    /// Attach the file as another process would (same identity each time, growing length) and read a live page.
    case readAttached(Int)

    static let generator = zip(Gen.int(in: 0...9), Gen.int(in: 0...1000))
        .map { kind, value -> AllocatorOperation in
            switch kind {
            case 0...4: .allocate(fill: UInt8(truncatingIfNeeded: value))
            case 5, 6: .release(value)
            case 7: .resolveLive(value)
            case 8: .readAttached(value)
            default: .resolveReleased(value)
            }
        }

    var description: String {
        switch self {
        case .allocate(let fill): "allocate(\(fill))"
        case .release(let i): "release(\(i))"
        case .resolveLive(let i): "resolveLive(\(i))"
        case .resolveReleased(let i): "resolveReleased(\(i))"
        case .readAttached(let i): "readAttached(\(i))"
        }
    }
}

@Suite struct AllocatorPropertyTests {
    @Test(.shrinking)
    func contentsSurviveAndLiveSlotsNeverCollide() async throws {
        await checkProperty(count: 200, input: AllocatorOperation.generator.array(of: 0...150)) { operations in
            let allocator = try PageAllocator(options: .init(reclaimBatchPages: 8, reservedReleasedPages: 4))
            let attachedIdentity = UInt64.random(in: 1...UInt64.max)
            var attached: PageAllocator?
            var live: [(page: Page, fill: UInt8)] = []
            var released: [PageLocation.Place] = []
            for operation in operations {
                switch operation {
                case .allocate(let fill):
                    live.append((try allocator.allocate(copying: [UInt8](repeating: fill, count: Page.size)), fill))
                case .release(let i):
                    guard !live.isEmpty else { continue }
                    let (page, _) = live.remove(at: i % live.count)
                    // Released only when no other reference to the slot is live.
                    if !live.contains(where: { $0.page.location == page.location }) { released.append(page.location) }
                case .resolveLive(let i):
                    guard !live.isEmpty else { continue }
                    let original = live[i % live.count]
                    let resolved = try allocator.page(at: original.page.location)
                    #expect(resolved.bytes == original.page.bytes)
                    live.append((resolved, original.fill))
                case .readAttached(let i):
                    guard !live.isEmpty else { continue }
                    let description = allocator.describe()
                    let again = try PageAllocator.attach(AllocatorDescription(
                        descriptor: try description.descriptor.duplicate(), identity: attachedIdentity,
                        length: description.length))
                    #expect(attached == nil || attached === again, "one identity, one allocator per process")
                    attached = again
                    let (page, fill) = live[i % live.count]
                    #expect(try again.page(at: page.location).bytes.allSatisfy { $0 == fill })
                case .resolveReleased(let i):
                    guard !released.isEmpty else { continue }
                    let place = released[i % released.count]
                    guard !live.contains(where: { $0.page.location.offset == place.offset && $0.page.location.tag == place.tag })
                    else { continue }
                    #expect(throws: PageAllocatorError.self) { try allocator.page(at: place) }
                }
            }
            for (page, fill) in live { #expect(page.bytes.allSatisfy { $0 == fill }) }
            // Distinct live slots have distinct offsets; two references to one slot share its tag.
            var tagByOffset: [UInt64: UInt32] = [:]
            for (page, _) in live {
                let place = page.location
                if let tag = tagByOffset[place.offset] { #expect(tag == place.tag, "two live pages share offset \(place.offset)") }
                tagByOffset[place.offset] = place.tag
            }
            #expect(allocator.statistics.livePages == tagByOffset.count)
        }
    }
}
