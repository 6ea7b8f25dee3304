import PageState
import Testing

/// The history the property test shrank to (seed G6e8Zdk6GRIV5PsizCiozp+EZWyZd/JiOBbhBe/Wuy0=): writing
/// nothing past the end of a memory grows nothing, in the PageMap and in the model.
@Test func zeroLengthWritePastTheEndGrowsNothing() throws {
    try StateManagerPropertyTests.run([.write(guest: GuestID(0), memory: "heap", address: 1, count: 0, fill: 0),
                                       .write(guest: GuestID(0), memory: "heap", address: 9000, count: 0, fill: 0)])
}
