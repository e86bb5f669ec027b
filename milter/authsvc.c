/*
 * authsvc.c - placeholder: the auth-service.socket service is not implemented yet; configuring
 * it is refused at start so nobody relies on a service that is not there.
 */
#include "log.h"
#include "services.h"

int authsvc_start(const struct nh_config *cfg)
{
    if (!cfg->auth_service_socket)
        return 0;
    log_error("auth-service.socket is configured but this build does not implement it yet");
    return -1;
}
