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
static uint32_t thread_id;  // 0 until registered

_Static_assert(PS_DEATH_NOTICE_DIED == FUTEX_OWNER_DIED, "the host reads the kernel's bit");

int ps_worker_death_notice_register(void) {
    head.list.next = &head.list;  // empty until a word is linked
    if (syscall(SYS_set_robust_list, &head, sizeof head) != 0) return -1;
    thread_id = (uint32_t)syscall(SYS_gettid) & FUTEX_TID_MASK;
    return 0;
}

void ps_worker_death_notice_link(uint32_t *word) {
    if (thread_id == 0 || ((uintptr_t)word & 3) != 0) return;  // the word stays 0: "not known" to the host
    // Linked while the word is still 0 (the kernel leaves a word without this thread's id alone), the
    // id stored last: a death between the two leaves 0 ("ask the pidfd"), never an unmarked id. The
    // kernel reads the list only when this same thread exits: ordering against the compiler suffices.
    head.futex_offset = (long)((char *)word - (char *)&entry);
    entry.next = &head.list;
    __atomic_store_n(&head.list.next, &entry, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(word, thread_id, __ATOMIC_RELAXED);
}
