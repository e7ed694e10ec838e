/* lt_profile.h - send-rate profiles of `replay`.
 *
 * A profile is a rate r(t) in messages per second, t in seconds since the
 * start; the sender keeps the number of messages sent equal to
 * N(t) = integral of r from 0 to t (lt_profile_due), so a profile is
 * followed exactly on average whatever the sleep granularity:
 *
 *   constant  r(t) = rate
 *   ramp      rate -> rate_end linearly over ramp_s, then rate_end
 *   burst     rate, times burst_factor during [burst_at_s, burst_at_s + burst_s)
 *   original  the dump's own timing: record i is due at
 *             (timestamp_i - timestamp_0) * time_scale (lt_profile_due is
 *             not used; see cmd_replay.c)
 */
#ifndef LT_PROFILE_H
#define LT_PROFILE_H

#include <stddef.h>

typedef enum { LT_PROF_CONSTANT, LT_PROF_RAMP, LT_PROF_BURST, LT_PROF_ORIGINAL } lt_profile_kind;

typedef struct {
    lt_profile_kind kind;
    double rate;         /* messages/s (constant, ramp start, burst base)      */
    double rate_end;     /* ramp: final rate                                  */
    double ramp_s;       /* ramp: duration of the ramp                        */
    double burst_at_s;   /* burst: start, seconds after the first message      */
    double burst_s;      /* burst: duration                                   */
    double burst_factor; /* burst: rate multiplier during the burst (k)        */
    double time_scale;   /* original: gaps between records are multiplied by it */
} lt_profile;

/* "constant" | "ramp" | "burst" | "original" -> kind. 0, or -1. */
int lt_profile_kind_parse(const char *s, lt_profile_kind *k);
const char *lt_profile_kind_name(lt_profile_kind k);

/* Checks the parameters the kind needs. 0, or -1 + err naming the flag. */
int lt_profile_check(const lt_profile *p, char *err, size_t errlen);

/* Messages due by t seconds (N(t), fractional; 0 for t <= 0). */
double lt_profile_due(const lt_profile *p, double t);
/* The instantaneous rate r(t). */
double lt_profile_rate(const lt_profile *p, double t);
/* When message number n (0-based) is due: the smallest t >= 0 with
 * N(t) >= n (message 0 at t = 0, message n of a constant rate r at n / r).
 * INFINITY when the profile never gets there (a ramp down to 0). */
double lt_profile_time_of(const lt_profile *p, double n);

/* Named phase boundaries, seconds after the start (for the manifest's
 * marks): ramp -> "ramp_end"; burst -> "burst_start", "burst_end". Returns
 * how many were written (at most 2). */
int lt_profile_marks(const lt_profile *p, const char *names[2], double at_s[2]);

#endif
