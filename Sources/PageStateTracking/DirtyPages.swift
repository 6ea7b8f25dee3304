import PageStateMemory

/// The pages an execution wrote: ascending, non-overlapping, non-adjacent runs of page indices.
public struct DirtyPages: Sendable, Hashable {
    public private(set) var runs: [Range<PageIndex>] = []
    /// Pages in all runs.
    public private(set) var count = 0

    public init() {}

    /// Appends a run that starts at or after the start of the last one, merging it with the last
    /// run when they touch or overlap (a resumed PAGEMAP_SCAN may report the page it stopped on again).
    ///
    /// - Complexity: O(1) amortized.
    mutating func append(_ run: Range<PageIndex>) {
        guard !run.isEmpty else { return }
        guard let last = runs.last, run.lowerBound <= last.upperBound else {
            precondition(runs.last.map { $0.upperBound < run.lowerBound } ?? true, "runs must arrive in ascending order")
            count += run.count
            runs.append(run)
            return
        }
        precondition(last.lowerBound <= run.lowerBound, "runs must arrive in ascending order")
        guard run.upperBound > last.upperBound else { return }
        count += Int(run.upperBound - last.upperBound)
        runs[runs.count - 1] = last.lowerBound..<run.upperBound
    }

    /// Every dirty page index, ascending.
    ///
    /// - Complexity: O(count).
    public var indices: [PageIndex] { runs.flatMap { Array($0) } }
}
