#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/seccomp.h>

const unsigned long PS_UFFDIO_API = UFFDIO_API;
const unsigned long PS_UFFDIO_REGISTER = UFFDIO_REGISTER;
const unsigned long PS_UFFDIO_WRITEPROTECT = UFFDIO_WRITEPROTECT;
const unsigned long PS_PAGEMAP_SCAN = _IOWR('f', 16, struct ps_pm_scan_arg);
const int PS_MREMAP_MAYMOVE = MREMAP_MAYMOVE, PS_MREMAP_FIXED = MREMAP_FIXED;

int ps_fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
int ps_fcntl_ptr(int fd, int cmd, void *arg) { return fcntl(fd, cmd, arg); }
int ps_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
int ps_memfd_create(const char *name, unsigned int flags) { return (int)syscall(SYS_memfd_create, name, flags); }
int ps_fallocate(int fd, int mode, off_t offset, off_t len) { return fallocate(fd, mode, offset, len); }
int ps_userfaultfd(int flags) { return (int)syscall(SYS_userfaultfd, flags); }
int ps_eventfd_cloexec(void) { return eventfd(0, EFD_CLOEXEC); }
pid_t ps_gettid(void) { return (pid_t)syscall(SYS_gettid); }
int ps_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name); }
int ps_set_timer_slack(unsigned long nanoseconds) { return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0); }
long ps_get_timer_slack(void) { return (long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0); }
int ps_current_cpu(void) { return sched_getcpu(); }
int ps_sched_getaffinity(pid_t pid, size_t size, void *mask) { return sched_getaffinity(pid, size, mask); }
int ps_sched_setaffinity(pid_t pid, size_t size, const void *mask) { return sched_setaffinity(pid, size, mask); }
int ps_prctl_get_seccomp(void) { return prctl(PR_GET_SECCOMP, 0, 0, 0, 0); }
int ps_seccomp_kill_process_available(void) {
    uint32_t action = SECCOMP_RET_KILL_PROCESS;
    return (int)syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
}

ssize_t ps_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags) {
    if (nfds < 0 || nfds > 253) { errno = EINVAL; return -1; }
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    union { char buf[CMSG_SPACE(253 * sizeof(int))]; struct cmsghdr align; } control;
    if (nfds > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, (size_t)nfds * sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
}

ssize_t ps_recv_with_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    union { char buf[CMSG_SPACE(253 * sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
    *nfds = 0;
    *truncated = 0;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = 1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        const unsigned char *data = CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, data + (size_t)i * sizeof(int), sizeof(int));
            if (*nfds < maxfds) fds[(*nfds)++] = fd;
            else { close(fd); *truncated = 1; }  // never leak descriptors the caller has no room for
        }
    }
    return n;
}
