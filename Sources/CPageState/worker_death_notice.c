// A worker's death notice: a word in its shared mailbox that the kernel marks when the worker dies,
// through the robust-futex list of its thread (set_robust_list(2); the kernel walks it at exit and
// sets FUTEX_OWNER_DIED in each listed word that holds the dying thread's id). The host reads the
// word to learn, without a system call, whether a spare it holds is still alive.
#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

// One list of one entry for the worker's only thread. The entry is static, the word in the mailbox:
// the kernel finds the word at `entry + futex_offset`.
static struct robust_list_head head = { { &head.list }, 0, NULL };
static struct robust_list entry;
static int registered;

int ps_worker_death_notice_register(void) {
    head.list.next = &head.list;  // empty until a word is linked
    if (syscall(SYS_set_robust_list, &head, sizeof head) != 0) return -1;
    registered = 1;
    return 0;
}

void ps_worker_death_notice_link(uint32_t *word) {
    if (!registered || ((uintptr_t)word & 3) != 0) return;  // the word stays 0: "not known" to the host
    __atomic_store_n(word, (uint32_t)syscall(SYS_gettid) & FUTEX_TID_MASK, __ATOMIC_RELAXED);
    head.futex_offset = (long)((char *)word - (char *)&entry);
    entry.next = &head.list;
    // Read by the kernel only when this same thread exits: program order is enough.
    __atomic_store_n(&head.list.next, &entry, __ATOMIC_RELEASE);
}
