/*
 * privileges.c - switching to milter.user / milter.group (see privileges.h).
 *
 * Root switches for real: supplementary groups, then the group, then the
 * user, and checks that root cannot be taken back. A process started
 * unprivileged (e.g. by systemd as User=milter-nexthop) cannot switch; it
 * is accepted when it already is that user and already has that group
 * (primary or supplementary), and refused otherwise.
 * Must not: go on serving with an identity other than the one configured.
 */
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* True when the process has gid as its effective or a supplementary group. */
static bool has_group(gid_t gid)
{
    gid_t groups[256];
    int n = getgroups(256, groups);
    if (getegid() == gid)
        return true;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return false;
}

static int group_id(const char *group, gid_t *gid, char *err, size_t errlen)
{
    struct group *gr = getgrnam(group);
    if (!gr) {
        set_error(err, errlen, "no such group: %s", group);
        return -1;
    }
    *gid = gr->gr_gid;
    return 0;
}

/* milter.group without milter.user. */
static int group_only(const char *group, char *err, size_t errlen)
{
    gid_t gid;
    if (group_id(group, &gid, err, errlen) < 0)
        return -1;
    if (geteuid() != 0) {
        if (has_group(gid))
            return 0;
        set_error(err, errlen, "cannot switch to group %s: not started as root, and not a member", group);
        return -1;
    }
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0) {
        set_error(err, errlen, "cannot switch to group %s: %s", group, strerror(errno));
        return -1;
    }
    log_warning("running as root (group %s): set milter.user or -u", group);
    return 0;
}

int privileges_drop(const char *user, const char *group, char *err, size_t errlen)
{
    if (!user && group)
        return group_only(group, err, errlen);
    if (!user) {
        if (geteuid() == 0)
            log_warning("running as root: set milter.user or -u");
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        set_error(err, errlen, "no such user: %s", user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (group && group_id(group, &gid, err, errlen) < 0)
        return -1;
    if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid) {   /* already that user (systemd) */
        if (!group || has_group(gid))
            return 0;
        set_error(err, errlen, "cannot switch to group %s: not started as root, and not a member", group);
        return -1;
    }
    if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
        set_error(err, errlen, "cannot become %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        set_error(err, errlen, "privileges were not dropped");
        return -1;
    }
    return 0;
}
