#define _GNU_SOURCE
#include "CPageState.h"
#include <sched.h>
#include <spawn.h>

int ps_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int *sources, int count) {
    posix_spawn_file_actions_t actions;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    for (int i = 0; rc == 0 && i < count; i++) rc = posix_spawn_file_actions_adddup2(&actions, sources[i], i);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, count);
    posix_spawnattr_t attributes;
    if (rc == 0) rc = posix_spawnattr_init(&attributes);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    // Not the calling thread's policy: a launcher started from a SCHED_BATCH thread (the replenishing
    // thread makes one ahead) would pass batch on to every worker it forks.
    struct sched_param normal = { .sched_priority = 0 };
    rc = posix_spawnattr_setschedpolicy(&attributes, SCHED_OTHER);
    if (rc == 0) rc = posix_spawnattr_setschedparam(&attributes, &normal);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSCHEDULER);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attributes, argv, envp);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}
