/*
 * socketmap.c - placeholder: the socketmap.listen service is not implemented yet; configuring
 * it is refused at start so nobody relies on a service that is not there.
 */
#include "log.h"
#include "services.h"

int socketmap_start(const struct nh_config *cfg)
{
    if (!cfg->socketmap_listen)
        return 0;
    log_error("socketmap.listen is configured but this build does not implement it yet");
    return -1;
}
