// The default worker executable: the demo entry points plus the hostile ones the tests use.
import PageStateSandbox
import PageStateWorkloads

var runtime = WorkerRuntime()
DemoEntryPoints.register(in: &runtime)
HostileEntryPoints.register(in: &runtime)
WorkerMain.run(runtime)
