// Batched positional writes: the plan both file writers share (segments coalesced into runs of at
// most IOV_MAX buffers) and the io_uring backend that submits a plan as writev SQEs.
#define _GNU_SOURCE
#include "CPageState.h"
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <liburing.h>

ssize_t ps_write_plan(const struct ps_write_segment *segments, size_t count, struct iovec *iov,
                      struct ps_write_run *runs) {
    size_t nruns = 0, niov = 0;
    uint64_t end = 0;  // the file offset just past the last run
    for (size_t i = 0; i < count; i++) {
        const struct ps_write_segment *segment = &segments[i];
        if (segment->length == 0) continue;
        if (segment->offset > INT64_MAX || segment->length > INT64_MAX - segment->offset) {
            errno = EINVAL;
            return -1;
        }
        struct ps_write_run *run = nruns > 0 ? &runs[nruns - 1] : NULL;
        struct iovec *last = niov > 0 ? &iov[niov - 1] : NULL;
        if (run != NULL && segment->offset == end
            && (uintptr_t)last->iov_base + last->iov_len == (uintptr_t)segment->base) {
            last->iov_len += segment->length;  // contiguous in memory and in the file
        } else if (run != NULL && segment->offset == end && run->iovcnt < IOV_MAX) {
            iov[niov++] = (struct iovec){(void *)segment->base, segment->length};
            run->iovcnt++;
        } else {
            iov[niov] = (struct iovec){(void *)segment->base, segment->length};
            runs[nruns++] = (struct ps_write_run){&iov[niov++], 1, segment->offset};
        }
        end = segment->offset + segment->length;
    }
    return (ssize_t)nruns;
}

int ps_write_run_advance(struct ps_write_run *run, size_t written) {
    if (written == 0) return -EIO;
    run->offset += written;
    while (run->iovcnt > 0 && written >= run->iov->iov_len) {
        written -= run->iov->iov_len;
        run->iov++;
        run->iovcnt--;
    }
    if (run->iovcnt == 0) return 0;
    run->iov->iov_base = (char *)run->iov->iov_base + written;
    run->iov->iov_len -= written;
    return 1;
}

struct ps_uring {
    struct io_uring ring;
    /// Most SQEs queued or in flight at once, so completions never overflow the CQ ring (2 × depth).
    unsigned depth;
    /// -errno of a failed io_uring_enter that left SQEs in the ring; it is never entered again.
    int broken;
};

struct ps_uring *ps_uring_create(unsigned depth) {
    struct ps_uring *uring = calloc(1, sizeof *uring);
    if (uring == NULL) return NULL;
    int rc = io_uring_queue_init(depth, &uring->ring, 0);
    if (rc < 0) {
        free(uring);
        errno = -rc;
        return NULL;
    }
    uring->depth = depth;
    return uring;
}

void ps_uring_destroy(struct ps_uring *uring) {
    io_uring_queue_exit(&uring->ring);
    free(uring);
}

/// The user_data of the fsync SQE; writes carry their run's index.
static const uint64_t fsync_tag = UINT64_MAX;

/// Where the fsync of a `ps_uring_write` stands.
enum fsync_state {
    fsync_unqueued,
    fsync_queued,
    /// Queued, but a write continuation was queued after it, so it must run again.
    fsync_stale,
    fsync_done,
};

/// One `ps_uring_write` in progress.
struct uring_batch {
    struct io_uring *ring;
    int fd;
    struct ps_write_run *runs;
    /// SQEs prepared but not yet consumed by the kernel, and submitted but not yet completed.
    unsigned queued, inflight;
    enum fsync_state fsync;
    /// The first error (-errno); nothing new is queued once it is set.
    int error;
};

static void queue_write(struct uring_batch *batch, size_t index) {
    struct ps_write_run *run = &batch->runs[index];
    struct io_uring_sqe *sqe = io_uring_get_sqe(batch->ring);  // never NULL: queued + inflight <= depth
    io_uring_prep_writev(sqe, batch->fd, run->iov, (unsigned)run->iovcnt, run->offset);
    io_uring_sqe_set_data64(sqe, index);
    batch->queued++;
    if (batch->fsync == fsync_queued) batch->fsync = fsync_stale;
}

static void queue_fsync(struct uring_batch *batch) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(batch->ring);
    io_uring_prep_fsync(sqe, batch->fd, 0);
    io_uring_sqe_set_data64(sqe, fsync_tag);
    io_uring_sqe_set_flags(sqe, IOSQE_IO_DRAIN);  // starts once every earlier SQE has completed
    batch->queued++;
    batch->fsync = fsync_queued;
}

static void fail(struct uring_batch *batch, int error) {
    if (batch->error == 0) batch->error = error;
}

/// Continues a short or interrupted write, or records its error.
static void complete(struct uring_batch *batch, const struct io_uring_cqe *cqe) {
    int res = cqe->res;
    bool retry = res == -EAGAIN || res == -EINTR;
    if (cqe->user_data == fsync_tag) {
        if (res < 0 && !retry) fail(batch, res);
        else batch->fsync = retry || batch->fsync == fsync_stale ? fsync_unqueued : fsync_done;
        return;
    }
    int more = retry ? 1 : res < 0 ? res : ps_write_run_advance(&batch->runs[cqe->user_data], (size_t)res);
    if (more < 0) fail(batch, more);
    else if (more > 0 && batch->error == 0) queue_write(batch, cqe->user_data);
}

int ps_uring_write(struct ps_uring *uring, int fd, struct ps_write_run *runs, size_t count, int sync) {
    if (uring->broken) return uring->broken;
    struct uring_batch batch = {
        .ring = &uring->ring, .fd = fd, .runs = runs, .fsync = sync ? fsync_unqueued : fsync_done,
    };
    size_t next = 0;  // the first run not yet queued
    for (;;) {
        while (batch.error == 0 && next < count && batch.queued + batch.inflight < uring->depth)
            queue_write(&batch, next++);
        if (batch.error == 0 && next == count && batch.fsync == fsync_unqueued
            && batch.queued + batch.inflight < uring->depth)
            queue_fsync(&batch);
        if (batch.inflight == 0 && (batch.queued == 0 || uring->broken)) break;

        struct io_uring_cqe *cqe;
        int rc = uring->broken ? io_uring_wait_cqe(batch.ring, &cqe)  // submits nothing
                               : io_uring_submit_and_wait(batch.ring, 1);
        if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) {
            // transient: reap what has completed and enter again
        } else if (rc < 0 && uring->broken) {
            break;  // cannot even wait for the writes in flight
        } else if (rc < 0) {
            uring->broken = rc;
            fail(&batch, rc);
        } else if (!uring->broken) {
            batch.queued -= (unsigned)rc;
            batch.inflight += (unsigned)rc;
        }

        unsigned head, reaped = 0;
        io_uring_for_each_cqe(batch.ring, head, cqe) {
            reaped++;
            batch.inflight--;
            complete(&batch, cqe);
        }
        io_uring_cq_advance(batch.ring, reaped);
    }
    return batch.error;
}
