/*
 * stop.h - stopping the milter gracefully (SIGTERM, SIGINT).
 *
 * The milter socket stops accepting at once (new connections are refused,
 * so the MTA applies its milter_default_action without waiting), messages
 * in flight get a bounded time to end, then libmilter is stopped and
 * smfi_main() returns. A message that begins once the stop has begun is
 * refused with a temporary failure at RCPT (callbacks.c).
 * Must not: wait without a bound, or cut a message in flight short of it.
 */
#ifndef NEXTHOP_STOP_H
#define NEXTHOP_STOP_H

#include <stdbool.h>
#include <stdint.h>

#include "listener.h"

/* The milter socket libmilter listens on; before smfi_main(). */
void stop_init(struct listener *milter);

/* A message begins (MAIL FROM); false once the stop has begun: refuse it. */
bool stop_message_begin(void);
/* ... and ends (end of message, abort, close), for each begin that returned true. */
void stop_message_end(void);

/*
 * Begins the stop and returns at once: messages in flight get drain_ms to
 * end. Called again while waiting: stop without waiting any longer.
 */
void stop_begin(int64_t drain_ms);

/* True once the milter socket refuses new connections. */
bool stop_listener_closed(void);

/* After smfi_main() returned: the messages that were still in flight. */
int stop_messages_left(void);

#endif
