// Raw costs of the two write-tracking mechanisms, measured in plain C so that `pagestate bench
// tracking` can put PageState's trackers next to the kernel floor in one run. Each function maps
// `pages` populated anonymous pages, arms the mechanism, writes one byte to `writes` scattered pages
// (page i*7919 mod pages, all distinct for power-of-two `pages`) — the uffd probe then collects the
// written set with one re-arming scan; the mprotect probe's handler unprotects each page written —
// and returns the nanoseconds per written page, or a negative errno. The writes start with
// the caches evicted (`ps_evict_caches`), as PageState's trackers are measured: a region populated
// just before otherwise has its data, page tables and page structures in cache, and measured 5-10%
// faster than the same mechanism on memory last touched a while ago. PageState's trackers are
// measured with the same write loop, `ps_write_scattered_pages`: the loop's shape alone moved the
// cost per written page by a third (an unrolled loop ~900 ns, the same loop not unrolled ~1,200 ns,
// under the same tracking), so a loop compiled differently measured the compilers, not the trackers.
#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static char *populated(size_t pages) {
    char *region = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) return NULL;
    memset(region, 1, pages * 4096);
    return region;
}

/// The last-level cache's size from sysfs (`sysconf` reports the host's on some VMs: 320 MiB here
/// against 32 MiB), or 0.
static size_t last_level_cache_bytes(void) {
    FILE *file = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "re");
    if (!file) return 0;
    unsigned long kib = 0;
    int read = fscanf(file, "%luK", &kib);
    fclose(file);
    return read == 1 ? kib << 10 : 0;
}

void ps_evict_caches(void) {
    static volatile char *sweep;
    static size_t length;
    if (!sweep) {
        size_t cache = last_level_cache_bytes();
        length = cache > 0 && cache <= (64u << 20) ? 2 * cache : 128u << 20;
        void *mapped = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mapped == MAP_FAILED) return;
        sweep = mapped;
    }
    // One ordinary store per line: memset may use non-temporal stores for large sizes, which evict nothing.
    for (size_t offset = 0; offset < length; offset += 64) sweep[offset] += 1;
}

__attribute__((noinline))
void ps_write_scattered_pages(void *memory, size_t pages, size_t writes) {
    char *region = memory;
    for (size_t i = 0; i < writes; i++) region[((i * 7919) % pages) * 4096] += 1;
}

double ps_raw_uffd_write_ns(size_t pages, size_t writes) {
    char *region = populated(pages);
    if (!region) return -errno;
    double result = -EINVAL;
    int uffd = ps_userfaultfd(O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) uffd = ps_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    struct ps_page_region *regions = calloc(writes + 1, sizeof *regions);
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
    struct uffdio_register reg = { .range = { (uintptr_t)region, pages * 4096 }, .mode = UFFDIO_REGISTER_MODE_WP };
    struct uffdio_writeprotect wp = { .range = { (uintptr_t)region, pages * 4096 }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
    if (uffd < 0 || pagemap < 0 || !regions || ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg)
        || ioctl(uffd, UFFDIO_WRITEPROTECT, &wp)) {
        result = -errno;
        goto done;
    }
    struct ps_pm_scan_arg scan = {
        .size = sizeof scan, .flags = PS_PM_SCAN_WP_MATCHING | PS_PM_SCAN_CHECK_WPASYNC,
        .start = (uintptr_t)region, .end = (uintptr_t)region + pages * 4096,
        .vec = (uintptr_t)regions, .vec_len = writes + 1,
        .category_mask = PS_PAGE_IS_WRITTEN, .return_mask = PS_PAGE_IS_WRITTEN };
    ps_evict_caches();
    double start = now_ns();
    ps_write_scattered_pages(region, pages, writes);
    long found = ioctl(pagemap, PS_PAGEMAP_SCAN, &scan);
    double elapsed = now_ns() - start;
    result = found < 0 ? -errno : elapsed / (double)writes;
done:
    free(regions);
    if (pagemap >= 0) close(pagemap);
    if (uffd >= 0) close(uffd);
    munmap(region, pages * 4096);
    return result;
}

static char *fault_base;
static size_t fault_length;
static struct sigaction fault_saved;
static void on_fault(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    char *page = (char *)((uintptr_t)info->si_addr & ~(uintptr_t)4095);
    if (page < fault_base || page >= fault_base + fault_length) {
        sigaction(SIGSEGV, &fault_saved, NULL);  // not the probe's: the faulting write retries under the handler before
        return;
    }
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

double ps_raw_mprotect_write_ns(size_t pages, size_t writes) {
    char *region = populated(pages);
    if (!region) return -errno;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    fault_base = region;
    fault_length = pages * 4096;
    if (sigaction(SIGSEGV, &action, &fault_saved) != 0) { munmap(region, pages * 4096); return -errno; }
    ps_evict_caches();
    double start = now_ns();
    mprotect(region, pages * 4096, PROT_READ);
    ps_write_scattered_pages(region, pages, writes);
    double elapsed = now_ns() - start;
    sigaction(SIGSEGV, &fault_saved, NULL);
    munmap(region, pages * 4096);
    return elapsed / (double)writes;
}
