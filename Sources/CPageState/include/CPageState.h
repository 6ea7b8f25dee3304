// CPageState: what Swift cannot express on its own — kernel definitions Debian 12's headers lack,
// shims for variadic C functions (fcntl, ioctl, syscall, prctl), cmsg macros, a compiler builtin
// (prefetch), and liburing probes.
// Every function that can fail returns the raw result and leaves errno set, so the Swift wrappers
// turn it into Errno.
#ifndef CPAGESTATE_H
#define CPAGESTATE_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/userfaultfd.h>

// MARK: memfd, seals, fallocate, O_DIRECT, RUSAGE_THREAD, SCHED_BATCH (values are kernel ABI; defined here so no _GNU_SOURCE is needed)
enum {
    PS_MFD_CLOEXEC = 0x0001,
    PS_MFD_ALLOW_SEALING = 0x0002,
    PS_F_ADD_SEALS = 1024 + 9,
    PS_F_GET_SEALS = 1024 + 10,
    PS_F_SEAL_SEAL = 0x0001,
    PS_F_SEAL_SHRINK = 0x0002,
    PS_F_SEAL_GROW = 0x0004,
    PS_F_SEAL_WRITE = 0x0008,
    PS_FALLOC_FL_KEEP_SIZE = 0x01,
    PS_FALLOC_FL_PUNCH_HOLE = 0x02,
    PS_O_TMPFILE = 020000000 | 0200000,
    PS_O_DIRECT = 040000,
    PS_RUSAGE_THREAD = 1,
    PS_SCHED_BATCH = 3,
};

// MARK: userfaultfd write-protect (async) and PAGEMAP_SCAN, absent from Debian 12's headers
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

struct ps_page_region { uint64_t start, end, categories; };
struct ps_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
enum {
    PS_PAGE_IS_WPALLOWED = 1 << 0,
    PS_PAGE_IS_WRITTEN = 1 << 1,
    PS_PM_SCAN_WP_MATCHING = 1 << 0,
    PS_PM_SCAN_CHECK_WPASYNC = 1 << 1,
    PS_UFFD_FEATURE_WP_ASYNC = UFFD_FEATURE_WP_ASYNC,
    PS_UFFD_FEATURE_WP_UNPOPULATED = UFFD_FEATURE_WP_UNPOPULATED,
    PS_UFFD_USER_MODE_ONLY = UFFD_USER_MODE_ONLY,
};
extern const unsigned long PS_UFFDIO_API;
extern const unsigned long PS_UFFDIO_REGISTER;
extern const unsigned long PS_UFFDIO_WRITEPROTECT;
extern const unsigned long PS_PAGEMAP_SCAN;

// MARK: compiler builtins
/// `__builtin_prefetch(address, 0, 3)`: starts loading the cache line at `address` for reading. A hint:
/// nothing is read, and an address that is NULL, unmapped or stale never faults.
static inline void ps_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

// MARK: shims for variadic functions
/// `fcntl(fd, cmd, arg)` with an integer argument.
int ps_fcntl_int(int fd, int cmd, int arg);
/// `fcntl(fd, cmd, arg)` with a pointer argument.
int ps_fcntl_ptr(int fd, int cmd, void *arg);
/// `ioctl(fd, request, arg)` with a pointer argument.
int ps_ioctl_ptr(int fd, unsigned long request, void *arg);
/// `syscall(SYS_memfd_create, name, flags)`.
int ps_memfd_create(const char *name, unsigned int flags);
/// `fallocate(fd, mode, offset, len)` (glibc declares it only under _GNU_SOURCE).
int ps_fallocate(int fd, int mode, off_t offset, off_t len);
/// `syscall(SYS_userfaultfd, flags)`.
int ps_userfaultfd(int flags);
/// `eventfd(0, EFD_CLOEXEC)` (a header Swift's Glibc module does not import).
int ps_eventfd_cloexec(void);
/// `syscall(SYS_gettid)`: the calling thread's kernel id.
pid_t ps_gettid(void);
/// `prctl(PR_SET_NAME, name)`: names the calling thread (the first 15 bytes).
int ps_set_thread_name(const char *name);
/// `prctl(PR_SET_TIMERSLACK, nanoseconds)`: how late the calling thread's timed waits may end (0: the thread's default).
int ps_set_timer_slack(unsigned long nanoseconds);
/// `prctl(PR_GET_TIMERSLACK)`: the calling thread's timer slack in nanoseconds.
long ps_get_timer_slack(void);
/// `prctl(PR_GET_SECCOMP)`: 0 when not filtered, 2 when a filter is loaded, -1 with errno.
int ps_prctl_get_seccomp(void);
/// `syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &SECCOMP_RET_KILL_PROCESS)`: 0 when filters can kill.
int ps_seccomp_kill_process_available(void);

// MARK: descriptor passing (CMSG_* are macros)
/// `sendmsg(sock, msg, MSG_NOSIGNAL | flags)` of `len` bytes plus `nfds` descriptors as one SCM_RIGHTS
/// control message.
ssize_t ps_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags);
/// `recvmsg` with MSG_CMSG_CLOEXEC; stores up to `maxfds` received descriptors and their count.
/// `*truncated` is set when the data or control part did not fit (received descriptors are still returned).
ssize_t ps_recv_with_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated);

// MARK: io_uring (liburing's headers stay out of Swift's view)
/// Sets up and tears down a small ring: 0 when io_uring works, -errno otherwise.
int ps_io_uring_probe(void);

// MARK: batched positional writes (uring_writer.c), shared by both file writers
/// One piece of a batched write: `length` bytes from `base` land at byte `offset` of the file.
struct ps_write_segment { const void *base; size_t length; uint64_t offset; };
/// One positional vectored write: `iovcnt` (1...IOV_MAX) buffers land back to back from byte `offset`.
struct ps_write_run { struct iovec *iov; int iovcnt; uint64_t offset; };
/// Coalesces `count` segments, in order, into runs: a segment that starts where the previous one ends in
/// the file extends its buffer when it also does in memory, else joins its run as another buffer (up to
/// IOV_MAX); zero-length segments are skipped. `iov` and `runs` need room for `count` entries each.
/// Returns the number of runs, or -1 with errno EINVAL when a segment ends beyond INT64_MAX.
ssize_t ps_write_plan(const struct ps_write_segment *segments, size_t count, struct iovec *iov,
                      struct ps_write_run *runs);
/// Moves `run` past `written` bytes (a write's result): 1 when bytes remain, 0 when the run is complete,
/// -EIO when `written` is 0 (a write that makes no progress would otherwise be repeated forever).
int ps_write_run_advance(struct ps_write_run *run, size_t written);

/// An io_uring for batched writes.
struct ps_uring;
/// Sets up a ring that keeps at most `depth` requests queued or in flight; NULL with errno on failure.
struct ps_uring *ps_uring_create(unsigned depth);
void ps_uring_destroy(struct ps_uring *uring);
/// Writes every run (IORING_OP_WRITEV, at most `depth` at a time; short writes are continued and
/// -EAGAIN/-EINTR resubmitted, advancing `runs` in place) then, when `sync` is nonzero, fsyncs `fd`
/// (IORING_OP_FSYNC with IOSQE_IO_DRAIN, so it starts after the writes). Waits for every request it
/// submitted, even after an error. Returns 0 or the first -errno. Not thread-safe: one call at a time.
int ps_uring_write(struct ps_uring *uring, int fd, struct ps_write_run *runs, size_t count, int sync);

// MARK: mprotect + SIGSEGV dirty-page tracking (the handler must be C: async-signal-safe)
/// Most regions tracked at once in one process.
enum { PS_FAULT_TRACKER_MAX_REGIONS = 64 };
/// Installs the SIGSEGV handler once per process, remembering the previous handler to chain to.
/// Returns 0, or -1 with errno.
int ps_fault_tracker_install(void);
/// Starts recording first writes to the `pages` pages at `base` (page aligned): each access fault
/// there records its page index in `dirty` (room for `capacity` indices: one per page the region may
/// grow to, so nothing is lost) and makes the page writable. Faults beyond `pages` are not ours.
/// Returns a region id, or -1 with errno ENOSPC when all regions are in use.
int ps_fault_tracker_add(void *base, size_t pages, uint64_t *dirty, size_t capacity);
/// Sets how many pages of `region` are tracked (at most its capacity), e.g. after the memory grew.
void ps_fault_tracker_resize(int region, size_t pages);
/// Stops recording for `region`; the caller ensures no code writes to it concurrently.
void ps_fault_tracker_remove(int region);
/// Pages recorded since the last call (may exceed `capacity`: the rest were not stored); resets the count.
size_t ps_fault_tracker_take(int region);

// MARK: raw mechanism costs for `pagestate bench tracking` (raw_tracking.c)
/// Nanoseconds per page to write `writes` scattered pages of `pages` under async uffd write
/// protection and collect them with one re-arming PAGEMAP_SCAN; negative errno on failure.
double ps_raw_uffd_write_ns(size_t pages, size_t writes);
/// Nanoseconds per page to write-protect `pages` pages with mprotect and take `writes` scattered
/// first-write faults in a minimal SIGSEGV handler that unprotects the page; negative errno on failure.
/// Temporarily replaces the SIGSEGV handler (faults outside its region restore the one before): call
/// while no other thread writes tracked memory and no tracker is being set up.
double ps_raw_mprotect_write_ns(size_t pages, size_t writes);
/// Stores to every line of a buffer twice the size of the last-level cache (128 MiB where sysfs does
/// not say, or says more than 64 MiB), evicting whatever the caches held; the buffer is mapped at the
/// first call and kept.
void ps_evict_caches(void);
/// Adds one to the first byte of `writes` scattered pages of `memory` (page i*7919 mod `pages`, all
/// distinct for power-of-two `pages`): the write loop of every tracking figure, raw or PageState's.
void ps_write_scattered_pages(void *memory, size_t pages, size_t writes);

// MARK: page copies and spin hints Swift cannot express
/// Copies one 4 KiB page (both pointers 16-byte aligned) with non-temporal stores, which skip reading
/// the target's cache lines first. Call `ps_store_fence` before the copies must be visible to others.
void ps_copy_page_streaming(void *target, const void *source);
/// Orders earlier non-temporal stores before later stores (`sfence`).
void ps_store_fence(void);
/// Tells the processor this thread is spinning on memory another one writes (`pause` on x86-64,
/// `yield` on arm64): an intrinsic Swift cannot call.
void ps_cpu_relax(void);
/// The processor the calling thread runs on (`sched_getcpu`: glibc reads it from the thread's rseq
/// area, or the vDSO; no system call), or -1 with errno.
int ps_current_cpu(void);
/// `sched_getaffinity` / `sched_setaffinity` (glibc declares them only for _GNU_SOURCE); `mask` is
/// a `cpu_set_t` of `size` bytes.
int ps_sched_getaffinity(pid_t pid, size_t size, void *mask);
int ps_sched_setaffinity(pid_t pid, size_t size, const void *mask);

// MARK: sandbox launcher (launcher.c): the fork path stays in C
/// Wire format of the launcher's control socket (SOCK_SEQPACKET), one struct per message.
enum { PS_LAUNCH_MAGIC = 0x4C535350 /* "PSSL" */, PS_LAUNCH_SPAWN = 1,
       PS_LAUNCH_SPAWNED = 1, PS_LAUNCH_FAILED = 2, PS_LAUNCH_EXITED = 3 };
/// Host → launcher: fork a worker.
struct ps_launch_request { uint32_t magic, kind; uint64_t id; };
/// Launcher → host: `PS_LAUNCH_SPAWNED` (pid; the worker's pidfd and the host's end of its socket
/// travel as SCM_RIGHTS, in that order), sent once the worker said something on its socket (its
/// `ready`, or its end closed) or `PS_LAUNCH_READY_WAIT_MS` after the fork, `PS_LAUNCH_FAILED` (`value` = errno) for request `id`, or
/// `PS_LAUNCH_EXITED` (pid, `value` = wait status).
struct ps_launch_event { uint32_t magic, kind; uint64_t id; int32_t pid, value; };
enum { PS_LAUNCH_READY_WAIT_MS = 1000 };
/// Resource limits a worker gets before it returns to Swift (0 leaves a limit unchanged).
struct ps_worker_limits { uint64_t address_space_bytes, open_files, core_bytes; };
/// Threads in this process (entries of /proc/self/task), or -1 with errno.
int ps_thread_count(void);
/// Runs the launcher: compiles the worker's seccomp filter once, forks one worker per request on
/// `control` (each initializes and confines itself, then waits for its first message; the host asks
/// ahead of need and keeps the answers as spares), reports spawns and — unless `kernel_reaps` — exits,
/// and returns -1 when the host has gone or on a fatal error (errno set; the launcher should exit). Must be called
/// while the process has one thread (EBUSY otherwise). In a forked worker it returns the worker's
/// socket descriptor (3), after: PDEATHSIG SIGKILL (tied to the launcher), NO_NEW_PRIVS, the socket
/// moved to 3, every descriptor above 3 closed, the resource limits set. 0-2 stay as the launcher's
/// (the host gives them explicitly).
/// With `kernel_reaps` nonzero the launcher ignores SIGCHLD, so the kernel reaps each worker as it
/// exits, and reports no exits: the host reads them from the workers' pidfds (`ps_pidfd_exit_status`,
/// Linux 6.15+). Otherwise it reaps with `waitpid(-1)` (which walks every child) and reports each.
/// With `fault_tracking` nonzero the workers track dirty pages with mprotect + SIGSEGV, and their
/// filter lets them set SIGSEGV's handler (no other handler can be set once confined).
int ps_launcher_serve(int control, const struct ps_worker_limits *limits, int kernel_reaps, int fault_tracking);

/// Microseconds to fork a child that exits at once and reap it: the floor under a worker spawn
/// (`pagestate bench spawn`); the child runs no code but `_exit`. Negative errno on failure.
double ps_bare_fork_us(void);

// MARK: worker confinement (worker_confine.c)
/// What the SIGSYS reporter writes to the worker's socket before the worker exits.
enum { PS_VIOLATION_MAGIC = 0x49565350 /* "PSVI" */, PS_VIOLATION_SYSCALL = 1, PS_VIOLATION_ABORT = 2,
       PS_VIOLATION_EXIT_STATUS = 159 };
struct ps_violation_report { uint32_t magic, kind; int32_t syscall, arch; };
/// In a worker forked by `ps_launcher_serve`: installs the SIGSYS reporter (which writes a
/// `ps_violation_report` to `report_fd` and exits with `PS_VIOLATION_EXIT_STATUS`) and loads the
/// allow-list the launcher compiled. Afterwards any other system call traps. 0 or -1 with errno.
int ps_worker_confine(int report_fd);

// MARK: worker death notice (worker_death_notice.c)
/// Bits of a death-notice word: the dying worker's thread id while it lives, then `PS_DEATH_NOTICE_DIED`
/// (the kernel's FUTEX_OWNER_DIED, with the id cleared); 0 while no word is linked.
enum { PS_DEATH_NOTICE_DIED = 0x40000000 };
/// In a worker, before confinement: registers the calling thread's (empty) robust-futex list
/// (`set_robust_list`). 0 or -1 with errno; without it no word is linked and the host asks the kernel.
int ps_worker_death_notice_register(void);
/// In a worker, after `ps_worker_death_notice_register`: links `word` (4-byte aligned, in memory the
/// host shares) into the list, then writes the thread's id into it, so that the kernel sets
/// `PS_DEATH_NOTICE_DIED` in it when the worker dies, however it dies. No system call. The word must stay
/// mapped until the worker exits (the kernel writes it then; a worker never unmaps its mailbox).
void ps_worker_death_notice_link(uint32_t *word);
/// The name of system call `number` on this architecture (libseccomp), or NULL; free() the result.
char *ps_syscall_name(int number);
/// System call numbers the tests use (SYS_* are macros; Swift does not import them all).
enum { PS_SYS_OPENAT = SYS_openat, PS_SYS_SOCKET = SYS_socket, PS_SYS_EXECVE = SYS_execve, PS_SYS_CLONE = SYS_clone,
       PS_SYS_PTRACE = SYS_ptrace, PS_SYS_KILL = SYS_kill, PS_SYS_FTRUNCATE = SYS_ftruncate,
       PS_SYS_USERFAULTFD = SYS_userfaultfd, PS_SYS_VMSPLICE = SYS_vmsplice,
       PS_SYS_RT_SIGACTION = SYS_rt_sigaction, PS_SYS_MREMAP = SYS_mremap };
/// mremap's flags (Swift's Glibc module leaves them out: GNU extensions).
extern const int PS_MREMAP_MAYMOVE, PS_MREMAP_FIXED;
/// Raw `syscall(number, a, b, c, d)` for the tests (variadic in C).
long ps_raw_syscall(long number, long a, long b, long c, long d);
/// `posix_spawn(pid, path, actions, attributes, argv, envp)` with file actions: `dup2(sources[i], i)` for
/// each `i < count`, then close every descriptor from `count` up (`posix_spawn_file_actions_addclosefrom_np`,
/// a GNU extension); and the child scheduled `SCHED_OTHER` whatever the calling thread's policy
/// (`POSIX_SPAWN_SETSCHEDULER`). Each source must be `i` itself or at least `count`. Returns 0 or an error number.
int ps_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int *sources, int count);
/// `pidfd_open(pid, 0)`.
int ps_pidfd_open(pid_t pid);
/// `pidfd_send_signal(pidfd, signal, NULL, 0)`.
int ps_pidfd_send_signal(int pidfd, int signal);
/// How the process behind `pidfd` ended, from `ioctl(PIDFD_GET_INFO)` with `PIDFD_INFO_EXIT`
/// (Linux 6.15+): 1 with `*status` set to its wait status once it has exited and been reaped (by
/// its parent, or by the kernel when the parent ignores SIGCHLD); 0 before that, or when the kernel
/// keeps no exit status; -1 with errno (ENOTTY or EINVAL before Linux 6.13).
int ps_pidfd_exit_status(int pidfd, int *status);
/// The parent of the process behind `pidfd` (`ppid` of `ioctl(PIDFD_GET_INFO)`, Linux 6.13+), or
/// -1 with errno (ESRCH once it has been reaped).
pid_t ps_pidfd_parent(int pidfd);
/// Whether pidfds report exit statuses: starts a child that exits with status 42 at once (`vfork`;
/// the child only calls `_exit`), opens its pidfd while it is a zombie, reaps it, and asks. 1 when the
/// status reads back, 0 when the kernel does not report it, -1 with errno.
int ps_pidfd_exit_status_probe(void);

#endif
