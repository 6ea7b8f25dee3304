// mprotect + SIGSEGV dirty-page tracking. Everything the handler touches is async-signal-safe:
// atomics on a static table, mprotect, and the previously installed handler.
#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct region {
    _Atomic int active;          // published last (release), read first (acquire)
    uintptr_t base;
    _Atomic size_t pages;        // the accessible pages; grows up to `capacity`
    uint64_t *dirty;
    size_t capacity;
    _Atomic size_t count;
};

static struct region regions[PS_FAULT_TRACKER_MAX_REGIONS];
static struct sigaction previous;
static _Atomic int installed;
static const uintptr_t page_size = 4096;

static void chain(int sig, siginfo_t *info, void *context) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) { previous.sa_sigaction(sig, info, context); return; }
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    // No handler to chain to: restore the default action; returning re-executes the faulting
    // instruction, which now terminates the process exactly as it would have without us.
    signal(sig, SIG_DFL);
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    if (info->si_code == SEGV_ACCERR) {
        for (int i = 0; i < PS_FAULT_TRACKER_MAX_REGIONS; i++) {
            struct region *r = &regions[i];
            if (!atomic_load_explicit(&r->active, memory_order_acquire)) continue;
            size_t pages = atomic_load_explicit(&r->pages, memory_order_acquire);
            if (address < r->base || address >= r->base + pages * page_size) continue;
            uintptr_t page = (address - r->base) / page_size;
            size_t slot = atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
            if (slot < r->capacity) r->dirty[slot] = page;
            int saved = errno;
            int rc = mprotect((void *)(r->base + page * page_size), page_size, PROT_READ | PROT_WRITE);
            errno = saved;
            if (rc == 0) return;
            break;  // could not unprotect (ENOMEM: too many mappings): let the fault take its course
        }
    }
    chain(sig, info, context);
}

int ps_fault_tracker_install(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &previous) != 0) {
        atomic_store(&installed, 0);
        return -1;
    }
    return 0;
}

int ps_fault_tracker_add(void *base, size_t pages, uint64_t *dirty, size_t capacity) {
    for (int i = 0; i < PS_FAULT_TRACKER_MAX_REGIONS; i++) {
        struct region *r = &regions[i];
        int expected = 0;
        // Claim a free slot with a sentinel so two adders never share it, then publish.
        if (!atomic_compare_exchange_strong(&r->active, &expected, -1)) continue;
        r->base = (uintptr_t)base;
        atomic_store_explicit(&r->pages, pages, memory_order_relaxed);
        r->dirty = dirty;
        r->capacity = capacity;
        atomic_store_explicit(&r->count, 0, memory_order_relaxed);
        atomic_store_explicit(&r->active, 1, memory_order_release);
        return i;
    }
    errno = ENOSPC;
    return -1;
}

void ps_fault_tracker_resize(int region, size_t pages) {
    if (region >= 0 && region < PS_FAULT_TRACKER_MAX_REGIONS)
        atomic_store_explicit(&regions[region].pages, pages, memory_order_release);
}

void ps_fault_tracker_remove(int region) {
    if (region >= 0 && region < PS_FAULT_TRACKER_MAX_REGIONS)
        atomic_store_explicit(&regions[region].active, 0, memory_order_release);
}

size_t ps_fault_tracker_take(int region) {
    if (region < 0 || region >= PS_FAULT_TRACKER_MAX_REGIONS) return 0;
    return atomic_exchange_explicit(&regions[region].count, 0, memory_order_acq_rel);
}
