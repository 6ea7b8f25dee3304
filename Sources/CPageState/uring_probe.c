#include "CPageState.h"
#include <liburing.h>

int ps_io_uring_probe(void) {
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0) return rc;
    io_uring_queue_exit(&ring);
    return 0;
}
