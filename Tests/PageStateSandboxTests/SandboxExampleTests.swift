import PageState
import Testing

@Suite("Sandbox pool: examples")
struct SandboxExampleTests {
    @Test("updates commit into the guest, queries leave no trace, state persists across executions")
    func counterAndKeyValue() throws {
        let pool = makePool()
        defer { pool.shutDown() }
        let guest = try Guest(id: 1, heapCapacityInPages: 1024, stableCapacityInPages: 1024)
        for expected in UInt64(1)...3 {
            let outcome = try pool.execute(guest, request("counter.increment"))
            #expect(u64(outcome.output) == expected)
        }
        #expect(u64(try pool.execute(guest, request("counter.get", kind: .query)).output) == 3)
        #expect(try pool.execute(guest, request("kv.put", putInput("alpha", "one"))).output == [1])
        #expect(try pool.execute(guest, request("kv.get", Array("alpha".utf8), kind: .query)).output == Array("one".utf8))
        #expect(u64(guest.heap.page(0)) == 3)
        #expect(pool.statistics.spawned == 1)
    }
}
