import Foundation
import PageStateKernel
import Synchronization
import Testing

@Suite struct ThreadTimerSlackTests {
    @Test func aThreadSetsItsOwnTimerSlackAndGoesBackToItsDefault() throws {
        let seen = Mutex<[Duration]>([])
        let creators = callingThreadTimerSlack()
        try BackgroundThread(name: "slack", policy: .batch) {
            var values = [callingThreadTimerSlack()]
            setCallingThreadTimerSlack(.milliseconds(2))
            values.append(callingThreadTimerSlack())
            setCallingThreadTimerSlack(nil)
            values.append(callingThreadTimerSlack())
            seen.withLock { $0 = values }
        }.join()
        #expect(creators > .zero && creators != .milliseconds(2))
        #expect(seen.withLock { $0 } == [creators, .milliseconds(2), creators], "inherited, set, back to the default")
        #expect(callingThreadTimerSlack() == creators, "the creating thread's is untouched")
    }
}
