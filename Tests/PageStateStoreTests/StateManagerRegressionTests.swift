import PageState
import Testing

/// The history the property test shrank to (seed G6e8Zdk6GRIV5PsizCiozp+EZWyZd/JiOBbhBe/Wuy0=): writing
/// nothing past the end of a memory grows nothing, in the PageMap and in the model.
@Test func zeroLengthWritePastTheEndGrowsNothing() throws {
    try StateManagerPropertyTests.run([.write(guest: GuestID(0), memory: "heap", address: 1, count: 0, fill: 0),
                                       .write(guest: GuestID(0), memory: "heap", address: 9000, count: 0, fill: 0)])
}

/// Found by the property test (seed XC32ePmM5btTkDTKjru4nytw4RyulwrfpNDhqNy6khc=): a guest removed and
/// recreated with a smaller memory must not get an overlay holding pages beyond its new size.
@Test func recreatedSmallerMemoryIsRewrittenWhole() throws {
    try StateManagerPropertyTests.run([.write(guest: GuestID(1), memory: "heap", address: 0, count: 1, fill: 0), .commit,
                                       .removeGuest(GuestID(1)), .write(guest: GuestID(1), memory: "heap", address: 0, count: 0, fill: 0),
                                       .commit, .checkpoint, .reopen])
}
