#define _GNU_SOURCE
#include "CPageState.h"
#include <spawn.h>

int ps_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[], const int *sources, int count) {
    posix_spawn_file_actions_t actions;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    for (int i = 0; rc == 0 && i < count; i++) rc = posix_spawn_file_actions_adddup2(&actions, sources[i], i);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, count);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}
