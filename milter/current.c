/*
 * current.c - the runtime (config + remotes) that new work starts with.
 * A reload installs a new one; whoever took the old one keeps it until
 * done, so nothing in flight sees its rules change.
 * Must not: load or check configs (daemon.c does), or block beyond a mutex.
 */
#include <pthread.h>

#include "milter.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nh_runtime *current;

struct nh_runtime *runtime_current(void)
{
    pthread_mutex_lock(&current_lock);
    struct nh_runtime *rt = current ? runtime_ref(current) : NULL;
    pthread_mutex_unlock(&current_lock);
    return rt;
}

void runtime_install(struct nh_runtime *rt)
{
    pthread_mutex_lock(&current_lock);
    struct nh_runtime *old = current;
    current = rt;
    pthread_mutex_unlock(&current_lock);
    runtime_unref(old);
}
