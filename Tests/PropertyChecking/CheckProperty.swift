@_exported import PropertyBased
import Testing

/// `propertyCheck` that also fails on an error the body throws. swift-property-based 2.0.1 runs the
/// body under `try?` (`countIssues`), so a thrown error neither fails the test nor starts shrinking:
/// every property test here goes through this instead.
public func checkProperty<InputValue, ResultValue>(
    count: Int = 100,
    input: Generator<ResultValue, some Sequence<InputValue>>,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation,
    perform body: (ResultValue) async throws -> Void
) async {
    await propertyCheck(count: count, input: input, perform: { value in
        do { try await body(value) } catch { Issue.record(error, sourceLocation: sourceLocation) }
    }, isolation: isolation, sourceLocation: sourceLocation)
}

/// `checkProperty` over two inputs.
public func checkProperty<InA, InB, OutA, OutB>(
    count: Int = 100,
    input g0: Generator<OutA, some Sequence<InA>>,
    _ g1: Generator<OutB, some Sequence<InB>>,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation,
    perform body: (OutA, OutB) async throws -> Void
) async {
    await checkProperty(count: count, input: zip(g0, g1), isolation: isolation, sourceLocation: sourceLocation) { try await body($0, $1) }
}

/// `checkProperty` over three inputs.
public func checkProperty<InA, InB, InC, OutA, OutB, OutC>(
    count: Int = 100,
    input g0: Generator<OutA, some Sequence<InA>>,
    _ g1: Generator<OutB, some Sequence<InB>>,
    _ g2: Generator<OutC, some Sequence<InC>>,
    isolation: isolated (any Actor)? = #isolation,
    sourceLocation: SourceLocation = #_sourceLocation,
    perform body: (OutA, OutB, OutC) async throws -> Void
) async {
    await checkProperty(count: count, input: zip(g0, g1, g2), isolation: isolation, sourceLocation: sourceLocation) { try await body($0, $1, $2) }
}
