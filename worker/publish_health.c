/* publish_health.c - see publish_health.h. */
#include "publish_health.h"

#include <stdio.h>
#include <string.h>

void ph_init(pub_health *h, uint64_t window_ms)
{
    memset(h, 0, sizeof *h);
    h->window_ms = window_ms;
}

void ph_ok(pub_health *h, uint64_t now_ms)
{
    h->last_ok_ms = now_ms;
    h->failing_since_ms = 0;
    h->n_failed = 0;
}

void ph_fail(pub_health *h, uint64_t now_ms, const char *why)
{
    if (!h->failing_since_ms) h->failing_since_ms = now_ms;
    h->n_failed++;
    if (why) snprintf(h->last_error, sizeof h->last_error, "%s", why);
}

void ph_waiting(pub_health *h, uint64_t now_ms, bool waiting)
{
    if (!waiting)
        h->waiting_since_ms = 0;
    else if (!h->waiting_since_ms)
        h->waiting_since_ms = now_ms;
}

bool ph_healthy(const pub_health *h, uint64_t now_ms, char *why, size_t whylen)
{
    if (!h || h->window_ms == 0) return true;
    if (h->failing_since_ms && now_ms - h->failing_since_ms >= h->window_ms) {
        snprintf(why, whylen,
                 "publishing failing for %.0f s (%llu attempts, none accepted; last error: %s)",
                 (double)(now_ms - h->failing_since_ms) / 1000.0, (unsigned long long)h->n_failed,
                 h->last_error[0] ? h->last_error : "none given");
        return false;
    }
    /* Waiting with nothing accepted since the wait began (or since the last
     * success during it). */
    if (h->waiting_since_ms) {
        const uint64_t from =
            h->last_ok_ms > h->waiting_since_ms ? h->last_ok_ms : h->waiting_since_ms;
        if (now_ms - from >= h->window_ms) {
            snprintf(why, whylen,
                     "nothing published for %.0f s while outputs wait for the broker%s%s",
                     (double)(now_ms - from) / 1000.0, h->last_error[0] ? "; last error: " : "",
                     h->last_error);
            return false;
        }
    }
    return true;
}
