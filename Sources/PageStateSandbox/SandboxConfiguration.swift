import SystemPackage

/// How a `SandboxPool` runs workers.
public struct SandboxConfiguration: Sendable {
    /// The worker executable (one that calls `WorkerMain.run`).
    public var workerExecutable: FilePath
    /// Most workers alive at once; beyond it the least recently used is evicted.
    public var maximumLiveWorkers: Int = 1024
    /// Workers idle longer than this are terminated; a stopped launcher's copy of the worker
    /// executable is kept this long for a new launcher to run.
    public var idleTimeout: Duration = .seconds(60)
    /// Most resident memory (anonymous + shared, from /proc) all workers may hold together.
    public var rssBudgetBytes: UInt64 = 8 << 30
    /// Longest an execution may run before its worker is killed.
    public var executionTimeout: Duration = .seconds(10)
    /// Longest to wait for a new worker to say it is ready.
    public var spawnTimeout: Duration = .seconds(5)
    /// Largest output, host-call request or result a worker may send.
    public var maximumResultBytes: Int = 64 << 20
    /// Address space each worker may use (RLIMIT_AS); bounds what a guest can allocate.
    public var workerAddressSpaceBytes: UInt64 = 64 << 30
    /// Descriptors each worker may hold (RLIMIT_NOFILE).
    public var workerOpenFiles: UInt64 = 256
    /// How the host learns how a worker ended; `.pidfd` needs Linux 6.15 (a spawn fails without it).
    public var exitReporting: WorkerExitReporting = .automatic
    /// Workers the host keeps forked ahead of need (each confined and waiting for its first message):
    /// a spawn then takes one without waiting for the launcher. Once fewer than half are left, a
    /// spawn asks for replacements (up to this many again) after it is done; with none left a spawn
    /// waits for a fork. Each spare costs ~0.3 MiB. Each launcher (`workersPerLauncher`) keeps its own.
    public var spareWorkers: Int = 6
    /// Workers the pool keeps ready for its next new guests, made on a background thread from the
    /// launchers' spares (it forks nothing itself): a spawn that finds one takes it within the
    /// pool's lock, without a launcher's lock and without making the host's objects for the worker
    /// (performance.md, session 39); once fewer than half are left the thread makes more from the
    /// spares in hand. Ready workers are not live workers (`maximumLiveWorkers`, the RSS budget and
    /// the idle timeout ignore them) but count towards their launcher's `workersPerLauncher`; each
    /// costs ~0.3 MiB. 0, or `spareWorkers` 0, keeps none: every worker is spawned on demand.
    public var readyWorkers: Int = 2

    /// Whether the pool keeps ready workers (`readyWorkers` and `spareWorkers` both above 0).
    var keepsReadyWorkers: Bool { readyWorkers > 0 && spareWorkers > 0 }

    /// Live workers one launcher forks before spawns move to another launcher, which runs a private
    /// copy of the worker executable (~16 MB of page cache each for the default worker) once none
    /// with fewer than half this many is left. A fork waits for the kernel's walks over the pages
    /// every fork of the process shares, which grow with them: from 1,000 live forks, up to 36 ms
    /// against 0.3 (performance.md, session 33). The next launcher is made ahead once the current one
    /// has this many less a quarter (at least one): for values below 4 at its first worker, and at 1
    /// one launcher more than needed stays made ahead while the pool runs. `Int.max` forks every
    /// worker from one launcher; values below 1 count as 1.
    public var workersPerLauncher: Int = 100
    /// Where launchers' copies of the worker executable are made (unnamed files: nothing is left
    /// behind); nil means the worker executable's own directory. It must allow executables and
    /// `O_TMPFILE`, and should not be tmpfs (a copy there counts as every worker's shared memory).
    /// A copy that cannot be made or run is reported in `SandboxPool.Statistics` and that launcher
    /// runs the original.
    public var executableCopyDirectory: FilePath?
    /// Results of at least this many pages make the pool prepare the worker's next result file in
    /// the background (pages allocated ahead, so the worker only copies); 0 turns preparation off.
    public var preparedResultMinimumPages: Int = 256
    /// Prepared result files are never larger than this (pages; a larger update grows its file).
    public var preparedResultMaximumPages: Int = 65_536

    /// How long the host, after sending an execution, and a worker, after sending a result, spin on
    /// their shared mailbox for the answer before they sleep. Short executions then skip two
    /// wake-ups (tens of microseconds each on a virtual machine) at the price of up to this much CPU
    /// time each; zero turns spinning off.
    public var spinBeforeSleeping: Duration = .microseconds(200)
    /// Result files whose pages a guest's memories may hold before the oldest are copied into the
    /// guest's own allocator (each is one descriptor in the worker, which may hold `workerOpenFiles`).
    public var maximumResultFilesPerGuest: Int = 64

    public init(workerExecutable: FilePath) {
        self.workerExecutable = workerExecutable
    }
}
