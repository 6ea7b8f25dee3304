import Foundation
import Testing

@Suite struct SandboxCLITests {
    /// The issue's leak check: 10,000 executions (with evictions, worker kills and crashes) leave the
    /// host's descriptors and child processes at their baseline, and the launchers without zombies —
    /// at 4 workers per launcher, so that the soak's 12 live workers move between launchers.
    @Test func tenThousandExecutionsLeaveNoDescriptorsOrProcessesBehind() throws {
        let (status, output) = try runPageState(["soak", "sandbox", "--executions", "10000", "--seed", "7", "--workers-per-launcher", "4", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "output: \(output)")
        #expect(status == 0, "\(report["failures"] ?? "")")
        #expect(report["executions"] as? Int == 10_000)
        #expect(report["descriptorsAfter"] as? Int == report["descriptorsBefore"] as? Int)
        #expect(report["childrenAfter"] as? Int == report["childrenBefore"] as? Int)
        #expect(report["launcherChildrenAfterEviction"] as? Int == report["spareWorkers"] as? Int, "only the spares are left")
        #expect((report["launchersAtMost"] as? Int ?? 0) >= 3, "the 12 live workers were spread over launchers")
        #expect((report["evicted"] as? Int ?? 0) > 0, "the soak exercises evictions")
        #expect((report["discarded"] as? Int ?? 0) > 0, "the soak exercises crashed workers")
    }

    @Test func benchSpawnAndSandboxJSONHaveTheRequiredFigures() throws {
        let (spawnStatus, spawnOutput) = try runPageState(["bench", "spawn", "--json", "--live-workers", "1", "5", "--spawn-samples", "200"])
        #expect(spawnStatus == 0)
        let spawn = try #require(try JSONSerialization.jsonObject(with: Data(spawnOutput.utf8)) as? [String: Any])
        let spawnFigures = try #require(spawn["figures"] as? [String: Double])
        #expect((0...100).contains(spawnFigures["cpu_steal_percent"] ?? -1), "every suite reports the hypervisor's share")
        #expect((0...100).contains(spawnFigures["kdamond_cpu_percent"] ?? -1), "and DAMON's (0 where it does not run)")
        for key in ["spawn_p50_ms", "spawn_p99_ms", "spawn_p99_5_vs_1", "bare_fork_p50_ms", "spawn_paced_over_30us_percent_at_5",
                    "spawn_paced_over_1ms_count_at_1", "phase_exit_wait_ms_max", "spawn_growing_p99_ms", "spawn_growing_max_ms",
                    "floor_p99_5_vs_1", "floor_p99_ms_at_5"] {
            #expect(spawnFigures[key] != nil, "\(key)")
        }
        #expect((0.001...1).contains(spawnFigures["floor_p50_ms_at_1"] ?? 0), "the floor's work takes ~10 µs: it was not optimized away")
        #expect(spawnFigures["phase_exit_wait_workers"] == 4, "a change from 5 live to 1 sees the 4 workers it killed exit")
        #expect((0..<30_000).contains(spawnFigures["phase_exit_wait_ms_max"] ?? -1), "within the wait's bound")
        #expect(spawnFigures["launchers_max"] == 1, "5 live workers fit one launcher (100 per launcher)")
        let (spreadStatus, spreadOutput) = try runPageState(["bench", "spawn", "--json", "--live-workers", "1", "5", "--spawn-samples", "20",
                                                             "--workers-per-launcher", "2"])
        #expect(spreadStatus == 0)
        let spread = try #require(try JSONSerialization.jsonObject(with: Data(spreadOutput.utf8)) as? [String: Any])
        #expect(((spread["figures"] as? [String: Double])?["launchers_max"] ?? 0) >= 3, "5 live workers, 2 per launcher")
        #expect(try runPageState(["bench", "spawn", "--workers-per-launcher", "0"]).status != 0)
        let (status, output) = try runPageState(["bench", "sandbox", "--json"])
        #expect(status == 0)
        let sandbox = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let figures = try #require(sandbox["figures"] as? [String: Double])
        for key in ["update_sandboxed_vs_inprocess", "query_sandboxed_vs_inprocess", "stable_op_ns", "host_call_us", "idle_worker_rss_mib"] {
            #expect(figures[key] != nil, "\(key)")
        }
    }
}
