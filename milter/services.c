/*
 * services.c - start the optional listeners configured in the file
 * (see services.h). A service that cannot listen stops the start: an
 * administrator who configured it expects it to be there.
 */
#include "services.h"

int services_start(const struct nh_config *cfg)
{
    if (stats_start(cfg) < 0 || socketmap_start(cfg) < 0 || authsvc_start(cfg) < 0)
        return -1;
    return 0;
}
