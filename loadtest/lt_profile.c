/* lt_profile.c - rate profiles (lt_profile.h). */
#include <math.h>
#include <string.h>

#include "lt.h"
#include "lt_profile.h"

static const char *const kind_names[] = {"constant", "ramp", "burst", "original"};

int lt_profile_kind_parse(const char *s, lt_profile_kind *k)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, kind_names[i])) {
            *k = (lt_profile_kind)i;
            return 0;
        }
    return -1;
}

const char *lt_profile_kind_name(lt_profile_kind k)
{
    return (unsigned)k < 4 ? kind_names[k] : "unknown";
}

int lt_profile_check(const lt_profile *p, char *err, size_t errlen)
{
    switch (p->kind) {
    case LT_PROF_CONSTANT:
        if (!(p->rate > 0)) return eq_err(err, errlen, "--rate must be > 0");
        return 0;
    case LT_PROF_RAMP:
        if (!(p->rate >= 0) || !(p->rate_end >= 0) || p->rate + p->rate_end <= 0)
            return eq_err(err, errlen,
                          "--profile ramp needs --rate and --rate-end (>= 0, "
                          "not both 0)");
        if (!(p->ramp_s > 0)) return eq_err(err, errlen, "--profile ramp needs --ramp-s > 0");
        return 0;
    case LT_PROF_BURST:
        if (!(p->rate > 0)) return eq_err(err, errlen, "--rate must be > 0");
        if (!(p->burst_factor >= 1))
            return eq_err(err, errlen, "--profile burst needs --burst-factor >= 1");
        if (!(p->burst_s > 0) || !(p->burst_at_s >= 0))
            return eq_err(err, errlen, "--profile burst needs --burst-at >= 0 and --burst-s > 0");
        return 0;
    case LT_PROF_ORIGINAL:
        if (!(p->time_scale >= 0)) return eq_err(err, errlen, "--time-scale must be >= 0");
        return 0;
    }
    return eq_err(err, errlen, "unknown profile");
}

static double clamp(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

double lt_profile_due(const lt_profile *p, double t)
{
    if (t <= 0) return 0;
    switch (p->kind) {
    case LT_PROF_CONSTANT:
        return p->rate * t;
    case LT_PROF_RAMP: {
        double u = t < p->ramp_s ? t : p->ramp_s;
        double n = p->rate * u + (p->rate_end - p->rate) * u * u / (2 * p->ramp_s);
        return n + p->rate_end * (t - u);
    }
    case LT_PROF_BURST:
        return p->rate * t +
               (p->burst_factor - 1) * p->rate * clamp(t - p->burst_at_s, 0, p->burst_s);
    case LT_PROF_ORIGINAL:
        return 0;
    }
    return 0;
}

double lt_profile_rate(const lt_profile *p, double t)
{
    switch (p->kind) {
    case LT_PROF_CONSTANT:
        return p->rate;
    case LT_PROF_RAMP:
        return t >= p->ramp_s
                   ? p->rate_end
                   : p->rate + (p->rate_end - p->rate) * clamp(t, 0, p->ramp_s) / p->ramp_s;
    case LT_PROF_BURST:
        return t >= p->burst_at_s && t < p->burst_at_s + p->burst_s ? p->rate * p->burst_factor
                                                                    : p->rate;
    case LT_PROF_ORIGINAL:
        return 0;
    }
    return 0;
}

double lt_profile_time_of(const lt_profile *p, double n)
{
    if (n <= 0) return 0;
    if (p->kind == LT_PROF_CONSTANT) return n / p->rate;
    double hi = 1;
    while (lt_profile_due(p, hi) < n) {
        hi *= 2;
        if (hi > 1e9) return INFINITY;
    }
    double lo = 0;
    for (int i = 0; i < 64 && hi - lo > 1e-7; i++) {
        double mid = (lo + hi) / 2;
        if (lt_profile_due(p, mid) >= n)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

int lt_profile_marks(const lt_profile *p, const char *names[2], double at_s[2])
{
    if (p->kind == LT_PROF_RAMP) {
        names[0] = "ramp_end";
        at_s[0] = p->ramp_s;
        return 1;
    }
    if (p->kind == LT_PROF_BURST) {
        names[0] = "burst_start";
        at_s[0] = p->burst_at_s;
        names[1] = "burst_end";
        at_s[1] = p->burst_at_s + p->burst_s;
        return 2;
    }
    return 0;
}
