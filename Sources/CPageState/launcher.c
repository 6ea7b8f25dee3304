// The sandbox launcher's loop and fork path. It runs in a process that has a single thread, so the
// forked child may go on to run Swift code (the worker runtime); everything between fork and the
// return to Swift uses only async-signal-safe calls.
#define _GNU_SOURCE
#include "CPageState.h"
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

int ps_worker_filter_compile(int fault_tracking);

int ps_thread_count(void) {
    DIR *tasks = opendir("/proc/self/task");
    if (!tasks) return -1;
    int count = 0;
    for (struct dirent *entry; (entry = readdir(tasks));) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(tasks);
    return count;
}

/// Sends one event with up to two descriptors; exit events must never block the launcher (a host that
/// stopped reading loses them and falls back to its pidfd), spawn replies may.
static void send_event(int control, uint32_t kind, uint64_t id, int32_t pid, int32_t value, const int *fds, int nfds, int flags) {
    struct ps_launch_event event = { PS_LAUNCH_MAGIC, kind, id, pid, value };
    while (ps_send_with_fds(control, &event, sizeof event, fds, nfds, flags) < 0 && errno == EINTR) {}
}

/// Reaps every exited child and reports it.
static void reap(int control) {
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        send_event(control, PS_LAUNCH_EXITED, 0, pid, status, NULL, 0, MSG_DONTWAIT);
    }
}

static void set_limit(int resource, uint64_t value) {
    if (value == 0) return;
    struct rlimit limit = { value, value };
    if (setrlimit(resource, &limit) != 0) _exit(127);
}

/// The child's set-up before it returns to Swift as a worker; any failure ends it (the host sees its
/// socket close before the worker said it was ready).
static int become_worker(int socket, pid_t launcher, const sigset_t *mask, const struct ps_worker_limits *limits) {
    signal(SIGCHLD, SIG_DFL);
    if (sigprocmask(SIG_SETMASK, mask, NULL) != 0) _exit(127);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != launcher) _exit(127);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(127);
    if (socket != 3) {
        if (dup2(socket, 3) != 3) _exit(127);  // the copy at 3 is not close-on-exec; nothing is exec'd anyway
    }
    if (syscall(SYS_close_range, 4, ~0U, 0) != 0) _exit(127);
    set_limit(RLIMIT_AS, limits->address_space_bytes);
    set_limit(RLIMIT_NOFILE, limits->open_files);
    struct rlimit core = { limits->core_bytes, limits->core_bytes };
    if (setrlimit(RLIMIT_CORE, &core) != 0) _exit(127);
    return 3;
}

enum { FORKED_PARENT = 0, FORKED_CHILD = 1 };

/// A forked worker: its pid, a pidfd, the host's end of its socket.
struct forked { pid_t pid; int pidfd; int host; };

/// Forks one worker with a new socket pair. In the child it returns FORKED_CHILD (set up as a worker);
/// in the launcher FORKED_PARENT with `worker` filled in, or -1 with errno. When the kernel reaps the
/// workers, one that died before its pidfd was opened may have left its pid to another process: the
/// pidfd is kept only if it names a child of this launcher, and nothing is ever signalled by pid.
static int fork_worker(pid_t self, const sigset_t *mask, const struct ps_worker_limits *limits, int kernel_reaps,
                       struct forked *worker) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        become_worker(pair[1], self, mask, limits);
        return FORKED_CHILD;
    }
    int failure = errno;
    close(pair[1]);
    if (pid < 0) {
        close(pair[0]);
        errno = failure;
        return -1;
    }
    int pidfd = ps_pidfd_open(pid);
    if (pidfd >= 0 && kernel_reaps && ps_pidfd_parent(pidfd) != self) {
        close(pidfd);  // the worker died at once, and its pid was taken by another process
        pidfd = -1;
        errno = ESRCH;
    }
    if (pidfd < 0) {
        failure = errno;
        if (!kernel_reaps) kill(pid, SIGKILL);  // a zombie until reaped: the pid is still the worker's
        close(pair[0]);
        errno = failure;
        return -1;
    }
    *worker = (struct forked){ pid, pidfd, pair[0] };
    return FORKED_PARENT;
}

/// Forked workers whose answer waits until they said something on their socket: the host then takes
/// a spare that is ready, its `ready` already queued, without waiting on the spawn's path.
enum { MAX_WAITING = 64 };
struct waiting { uint64_t id; int64_t deadline_ms; struct forked worker; };

static int64_t now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void answer_spawned(int control, const struct waiting *spawned) {
    int fds[2] = { spawned->worker.pidfd, spawned->worker.host };
    send_event(control, PS_LAUNCH_SPAWNED, spawned->id, spawned->worker.pid, 0, fds, 2, 0);
    close(spawned->worker.pidfd);
    close(spawned->worker.host);
}

int ps_launcher_serve(int control, const struct ps_worker_limits *limits, int kernel_reaps, int fault_tracking) {
    if (ps_thread_count() != 1) { errno = EBUSY; return -1; }
    if (ps_worker_filter_compile(fault_tracking) != 0) return -1;
    sigset_t children, previous;
    sigemptyset(&children);
    sigaddset(&children, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &children, &previous) != 0) return -1;
    int exits = -1;  // poll skips a negative descriptor
    // Ignored SIGCHLD: the kernel releases each exited worker at once (no zombie, no signal, and no
    // waitpid(-1) walk over every child, ~160 µs at 1,000 workers). Otherwise the default, set
    // explicitly: an ignored SIGCHLD survives exec, and a host that ignores it would hide every exit.
    struct sigaction disposition = { .sa_handler = kernel_reaps ? SIG_IGN : SIG_DFL };
    if (sigaction(SIGCHLD, &disposition, NULL) != 0) return -1;
    if (!kernel_reaps) {
        exits = signalfd(-1, &children, SFD_CLOEXEC | SFD_NONBLOCK);
        if (exits < 0) return -1;
    }
    pid_t self = getpid();
    struct waiting waiting[MAX_WAITING];
    int waiting_count = 0;
    for (;;) {
        struct pollfd watched[2 + MAX_WAITING] = { { control, POLLIN, 0 }, { exits, POLLIN, 0 } };
        int timeout = -1;
        int64_t now = now_ms();
        for (int i = 0; i < waiting_count; i++) {
            watched[2 + i] = (struct pollfd){ waiting[i].worker.host, POLLIN, 0 };
            int64_t left = waiting[i].deadline_ms - now;
            if (timeout < 0 || left < timeout) timeout = left < 0 ? 0 : (int)left;
        }
        if (poll(watched, 2 + (nfds_t)waiting_count, timeout) < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        now = now_ms();
        for (int i = waiting_count - 1; i >= 0; i--) {
            if (!watched[2 + i].revents && waiting[i].deadline_ms > now) continue;
            answer_spawned(control, &waiting[i]);
            waiting[i] = waiting[--waiting_count];
        }
        if (watched[1].revents) {
            struct signalfd_siginfo info;
            while (read(exits, &info, sizeof info) == sizeof info) {}
            reap(control);
        }
        if (!watched[0].revents) continue;
        struct ps_launch_request request;
        int stray = -1, received = 0, truncated = 0;
        ssize_t length = ps_recv_with_fds(control, &request, sizeof request, &stray, 1, &received, &truncated);
        if (received == 1) close(stray);
        if (length < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno == ECONNRESET) { errno = 0; return -1; }  // the host has gone
            return -1;
        }
        if (length == 0 && received == 0) { errno = 0; return -1; }  // the host has gone
        if (length != sizeof request || truncated || request.magic != PS_LAUNCH_MAGIC || request.kind != PS_LAUNCH_SPAWN) {
            send_event(control, PS_LAUNCH_FAILED, length == sizeof request ? request.id : 0, 0, EINVAL, NULL, 0, 0);
            continue;
        }
        struct waiting spawned = { request.id, now_ms() + PS_LAUNCH_READY_WAIT_MS, { 0, -1, -1 } };
        int forked = fork_worker(self, &previous, limits, kernel_reaps, &spawned.worker);
        if (forked == FORKED_CHILD) return 3;
        if (forked < 0) {
            send_event(control, PS_LAUNCH_FAILED, request.id, 0, errno, NULL, 0, 0);
        } else if (waiting_count < MAX_WAITING) {
            waiting[waiting_count++] = spawned;
        } else {
            answer_spawned(control, &spawned);
        }
    }
}

double ps_bare_fork_us(void) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) return -errno;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    clock_gettime(CLOCK_MONOTONIC, &end);
    return (double)(end.tv_sec - start.tv_sec) * 1e6 + (double)(end.tv_nsec - start.tv_nsec) / 1e3;
}
