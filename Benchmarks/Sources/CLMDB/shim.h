// LMDB's C API (Debian: liblmdb-dev), the baseline CheckpointBenchmarks compares PageState against.
#include <lmdb.h>
