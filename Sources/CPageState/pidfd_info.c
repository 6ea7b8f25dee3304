// PIDFD_GET_INFO (Linux 6.13+; the exit status since 6.15): Debian's kernel headers lack it, so the
// ioctl's struct and numbers are spelled out here, as in the kernel's include/uapi/linux/pidfd.h.
#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

/// The first published version of `struct pidfd_info` (PIDFD_INFO_SIZE_VER0, 64 bytes).
struct pidfd_info_v0 {
    uint64_t mask, cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code;
};
_Static_assert(sizeof(struct pidfd_info_v0) == 64, "PIDFD_INFO_SIZE_VER0");

#define PS_PIDFD_GET_INFO _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PS_PIDFD_INFO_EXIT (1ULL << 3)

static int pidfd_info(int pidfd, uint64_t mask, struct pidfd_info_v0 *info) {
    memset(info, 0, sizeof *info);
    info->mask = mask;
    int result;
    do { result = ioctl(pidfd, PS_PIDFD_GET_INFO, info); } while (result < 0 && errno == EINTR);
    return result;
}

int ps_pidfd_exit_status(int pidfd, int *status) {
    struct pidfd_info_v0 info;
    if (pidfd_info(pidfd, PS_PIDFD_INFO_EXIT, &info) != 0) {
        // Reaped, but the kernel keeps no exit information (before Linux 6.15): say "not yet".
        return errno == ESRCH ? 0 : -1;
    }
    if (!(info.mask & PS_PIDFD_INFO_EXIT)) return 0;
    *status = info.exit_code;
    return 1;
}

pid_t ps_pidfd_parent(int pidfd) {
    struct pidfd_info_v0 info;
    if (pidfd_info(pidfd, 0, &info) != 0) return -1;
    return (pid_t)info.ppid;
}

int ps_pidfd_exit_status_probe(void) {
    pid_t child = vfork();
    if (child == 0) _exit(42);
    if (child < 0) return -1;
    int pidfd = ps_pidfd_open(child);  // a zombie until reaped below, so the pid is still this child's
    int failure = errno;
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (pidfd < 0) { errno = failure; return -1; }
    int reported = ps_pidfd_exit_status(pidfd, &status);
    failure = errno;
    close(pidfd);
    if (reported < 0) { errno = failure; return -1; }
    return reported == 1 && WIFEXITED(status) && WEXITSTATUS(status) == 42;
}
