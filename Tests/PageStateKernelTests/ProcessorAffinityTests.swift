import PageStateKernel
import SystemPackage
import Testing

@Suite struct ProcessorAffinityTests {
    static let processorCount = (try? allowedProcessors().count) ?? 0

    @Test(.enabled(if: processorCount >= 2, "needs two processors this process may run on"))
    func leavingAProcessorMovesTheThreadAndKeepsWhatItIsAllowed() throws {
        let allowed = try allowedProcessors()
        let here = try #require(currentProcessor())
        #expect(allowed.contains(here))
        #expect(try leaveProcessor(here))
        #expect(currentProcessor() != here)
        #expect(try allowedProcessors() == allowed)
    }

    @Test func aThreadAllowedOneProcessorCannotLeaveIt() throws {
        let allowed = try allowedProcessors()
        let here = try #require(currentProcessor())
        try setAllowedProcessors([here])
        defer { try? setAllowedProcessors(allowed) }
        #expect(try allowedProcessors() == [here])
        #expect(try leaveProcessor(here) == false)
        #expect(currentProcessor() == here)
    }

    @Test func processorsPastTheSetAreIgnoredAndAnEmptySetIsRefused() throws {
        let allowed = try allowedProcessors()
        defer { try? setAllowedProcessors(allowed) }
        try setAllowedProcessors(allowed + [5_000])
        #expect(try allowedProcessors() == allowed)
        #expect(throws: Errno.invalidArgument) { try setAllowedProcessors([]) }
    }
}
