import PageStateMemory

/// The pages an execution wrote: ascending, non-overlapping, non-adjacent runs of page indices.
public struct DirtyPages: Sendable, Hashable {
    public private(set) var runs: [Range<PageIndex>] = []
    /// Pages in all runs.
    public private(set) var count = 0

    public init() {}

    /// Appends a run that starts at or after the end of the last one, merging adjacent runs.
    ///
    /// - Complexity: O(1) amortized.
    mutating func append(_ run: Range<PageIndex>) {
        guard !run.isEmpty else { return }
        precondition(runs.last.map { $0.upperBound <= run.lowerBound } ?? true, "runs must arrive in ascending order")
        count += run.count
        if let last = runs.last, last.upperBound == run.lowerBound {
            runs[runs.count - 1] = last.lowerBound..<run.upperBound
        } else {
            runs.append(run)
        }
    }

    /// Every dirty page index, ascending.
    ///
    /// - Complexity: O(count).
    public var indices: [PageIndex] { runs.flatMap { Array($0) } }
}
