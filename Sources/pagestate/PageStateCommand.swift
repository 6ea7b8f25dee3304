import ArgumentParser

@main
struct PageStateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pagestate",
        abstract: "Inspect, measure and exercise PageState on this machine.",
        subcommands: [DoctorCommand.self, BenchCommand.self, InspectCommand.self, VerifyCommand.self, SoakCommand.self]
    )
}
