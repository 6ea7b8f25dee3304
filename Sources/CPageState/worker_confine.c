// The worker's seccomp allow-list: compiled to BPF once in the launcher (libseccomp), inherited by
// every forked worker, and loaded there with one prctl. Anything not allowed traps: the SIGSYS
// reporter tells the host which system call it was, then the worker exits.
#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static struct sock_filter *filter_code;
static unsigned short filter_length;
static int report_descriptor = -1;
static pid_t confined_pid;

/// What the worker runtime needs while it runs guests: memory, its socket, memfds for results,
/// write protection through the userfaultfd it opened before confinement, time, and futexes for
/// the Swift runtime's locks. Not allowed: opening anything, sockets, new userfaultfds, processes
/// and threads (clone, fork, exec), signals to other processes, ptrace, truncation, signal handlers,
/// executable mappings, mappings moved to a chosen address, and every other call.
static const int allowed_calls[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(close), SCMP_SYS(fstat),
    SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(munmap),
    SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(sigaltstack), SCMP_SYS(futex), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(getpid),
    SCMP_SYS(gettid), SCMP_SYS(getcpu), SCMP_SYS(getrusage), SCMP_SYS(getrandom), SCMP_SYS(sched_yield), SCMP_SYS(exit), SCMP_SYS(exit_group),
    SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(poll),
    SCMP_SYS(ppoll), SCMP_SYS(memfd_create), SCMP_SYS(restart_syscall),
};

int ps_worker_filter_compile(int fault_tracking) {
    if (filter_code) return 0;
    scmp_filter_ctx context = seccomp_init(SCMP_ACT_TRAP);
    if (!context) { errno = ENOMEM; return -1; }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof allowed_calls / sizeof allowed_calls[0]; i++) {
        rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, allowed_calls[i], 0);
    }
    // No new signal handlers (SIGSEGV's only where dirty pages are tracked with mprotect + SIGSEGV:
    // the tracker installs its handler at its first use), no executable mapping, and no mapping
    // moved to a chosen address: the reporter and its code stay as they are, so that a forbidden
    // call ends the worker. Each comparison is exact on all 64 bits of the argument (a signal number
    // with high bits set, which the kernel would truncate, does not match).
    if (rc == 0 && fault_tracking) {
        rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1, SCMP_A0(SCMP_CMP_EQ, SIGSEGV));
    }
    if (rc == 0) rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0) rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0) rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(mremap), 1, SCMP_A3(SCMP_CMP_MASKED_EQ, MREMAP_FIXED, 0));
    // Its own processor affinity only (a worker moves off its host's processor; the cpuset bounds it).
    if (rc == 0) rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(sched_getaffinity), 1, SCMP_A0(SCMP_CMP_EQ, 0));
    if (rc == 0) rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(sched_setaffinity), 1, SCMP_A0(SCMP_CMP_EQ, 0));
    // ioctl only for write protection and PAGEMAP_SCAN (the userfaultfd's features were
    // negotiated before confinement).
    const unsigned long requests[] = { PS_UFFDIO_REGISTER, PS_UFFDIO_WRITEPROTECT, PS_PAGEMAP_SCAN };
    for (size_t i = 0; rc == 0 && i < sizeof requests / sizeof requests[0]; i++) {
        rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, requests[i]));
    }
    // fcntl only for seals and descriptor flags.
    const int commands[] = { PS_F_ADD_SEALS, PS_F_GET_SEALS, F_GETFD, F_SETFD, F_GETFL };
    for (size_t i = 0; rc == 0 && i < 5; i++) {
        rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, SCMP_A1(SCMP_CMP_EQ, commands[i]));
    }
    // fallocate only to punch holes: a worker frees the unused tail of a prepared result file (its
    // other descriptors are read-only, so it can punch nothing else).
    if (rc == 0) {
        rc = seccomp_rule_add(context, SCMP_ACT_ALLOW, SCMP_SYS(fallocate), 1,
                              SCMP_A1(SCMP_CMP_EQ, PS_FALLOC_FL_PUNCH_HOLE | PS_FALLOC_FL_KEEP_SIZE));
    }
    int file = -1;
    if (rc == 0) {
        file = ps_memfd_create("pagestate-seccomp", PS_MFD_CLOEXEC);
        rc = file < 0 ? -errno : seccomp_export_bpf(context, file);
    }
    seccomp_release(context);
    if (rc == 0) {
        off_t size = lseek(file, 0, SEEK_END);
        filter_code = size > 0 ? malloc((size_t)size) : NULL;
        if (!filter_code || pread(file, filter_code, (size_t)size, 0) != size) {
            rc = -EIO;
            free(filter_code);
            filter_code = NULL;
        } else {
            filter_length = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
        }
    }
    if (file >= 0) close(file);
    if (rc != 0) { errno = -rc; return -1; }
    return 0;
}

/// SIGSYS handler: async-signal-safe. Distinguishes a guest's abort() (raise → tgkill of itself with
/// SIGABRT) from other forbidden calls so the host can call it a crash.
static void report_violation(int signal_number, siginfo_t *info, void *context) {
    (void)signal_number;
    struct ps_violation_report report = { PS_VIOLATION_MAGIC, PS_VIOLATION_SYSCALL, info->si_syscall, (int32_t)info->si_arch };
#if defined(__x86_64__)
    const greg_t *registers = ((ucontext_t *)context)->uc_mcontext.gregs;
    long a0 = registers[REG_RDI], a1 = registers[REG_RSI], a2 = registers[REG_RDX];
#elif defined(__aarch64__)
    const unsigned long long *registers = ((ucontext_t *)context)->uc_mcontext.regs;
    long a0 = (long)registers[0], a1 = (long)registers[1], a2 = (long)registers[2];
#else
    long a0 = 0, a1 = 0, a2 = 0;
    (void)context;
#endif
    if ((info->si_syscall == SYS_tgkill && a0 == confined_pid && a2 == SIGABRT)
        || (info->si_syscall == SYS_tkill && a1 == SIGABRT) || (info->si_syscall == SYS_kill && a0 == confined_pid && a1 == SIGABRT)) {
        report.kind = PS_VIOLATION_ABORT;
    }
    ssize_t ignored = write(report_descriptor, &report, sizeof report);
    (void)ignored;
    syscall(SYS_exit_group, PS_VIOLATION_EXIT_STATUS);
}

int ps_worker_confine(int report_fd) {
    if (!filter_code) { errno = ENOENT; return -1; }
    // Readable would imply executable for every mapping: the filter's PROT_EXEC rule would not hold.
    int persona = personality(0xffffffff);
    if (persona == -1 || (persona & READ_IMPLIES_EXEC)) { errno = EPERM; return -1; }
    report_descriptor = report_fd;
    confined_pid = getpid();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = report_violation;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSYS, &action, NULL) != 0) return -1;
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    if (sigprocmask(SIG_UNBLOCK, &sys, NULL) != 0) return -1;
    struct sock_fprog program = { filter_length, filter_code };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) return -1;
    return 0;
}

char *ps_syscall_name(int number) { return seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, number); }

long ps_raw_syscall(long number, long a, long b, long c, long d) { return syscall(number, a, b, c, d); }

int ps_pidfd_send_signal(int pidfd, int signal_number) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal_number, NULL, 0);
}

int ps_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
