import CPageState
import Foundation
import Glibc
import PageStateKernel
import Synchronization
import SystemPackage
import Testing

@Suite struct ThreadTimerSlackTests {
    /// `/proc/<id>/timerslack_ns` of the thread `id` (the per-thread directories lack it).
    static func timerSlack(ofThread id: pid_t) -> String {
        ((try? readProcFile(FilePath("/proc/\(id)/timerslack_ns"))) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aThreadSetsItsOwnTimerSlackAndGoesBackToItsDefault() throws {
        let seen = Mutex<[String]>([])
        let creators = Self.timerSlack(ofThread: ps_gettid())
        try BackgroundThread(name: "slack", policy: .batch) {
            let id = ps_gettid()
            var values = [Self.timerSlack(ofThread: id)]
            setCallingThreadTimerSlack(.milliseconds(2))
            values.append(Self.timerSlack(ofThread: id))
            setCallingThreadTimerSlack(nil)
            values.append(Self.timerSlack(ofThread: id))
            seen.withLock { $0 = values }
        }.join()
        #expect(!creators.isEmpty && creators != "2000000")
        #expect(seen.withLock { $0 } == [creators, "2000000", creators], "inherited, set, back to the default")
        #expect(Self.timerSlack(ofThread: ps_gettid()) == creators, "the creating thread's is untouched")
    }
}
