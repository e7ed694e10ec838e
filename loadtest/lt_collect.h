/* lt_collect.h - what `collect` gathers (cmd_collect.c) and how it is
 * reported (lt_report.c: the JSON report and the gnuplot figure).
 *
 * Times are wall-clock microseconds since the epoch. An input's "done" time
 * is the broker's time of its first output or dead letter: the output
 * record's timestamp (Kafka: set by the worker's producer when it produced
 * it, millisecond resolution) or the output entry id's ms (Redis: the
 * server's clock when the worker's MULTI/EXEC ran). Latency = done - sent,
 * sent being the replay's clock at the send (the Kafka header
 * LT_SENT_HEADER on the output, else the manifest). All clocks must agree
 * (one machine, or NTP).
 */
#ifndef LT_COLLECT_H
#define LT_COLLECT_H

#include <stdbool.h>
#include <stdint.h>

#include "lt.h"

/* One message the manifest says was accepted by the broker. */
typedef struct {
    int64_t sent_us;
    int64_t done_us;   /* first output or dead letter; 0: not seen yet    */
    int32_t outs;      /* outputs seen                                    */
    int32_t dlqs;      /* dead letters seen                               */
    int32_t next_same; /* the next entry with the same id, -1: none       */
    char kind;         /* manifest kind: 's', 'i', '-'                    */
    char *ref;         /* "ID @ POSITION" (malloc'd), for listing missing ones */
} lt_entry;

enum { LT_EV_OUTPUT = 0, LT_EV_DEAD = 1, LT_EV_DUPLICATE = 2, LT_EV_UNEXPECTED = 3 };

/* One record read from the output or dead-letter topic/stream. */
typedef struct {
    int64_t done_us;
    int64_t lat_us; /* first outputs and dead letters; -1 otherwise */
    uint8_t what;   /* LT_EV_* */
} lt_event;

typedef struct {
    int64_t t_us;
    int64_t lag; /* not yet acknowledged (Kafka: high watermark - committed; Redis: lag + pending);
                    -1 unknown */
    int64_t pending; /* Redis: delivered, not acknowledged; -1 for Kafka */
} lt_lag_sample;

#define LT_MAX_MARKS 16
typedef struct {
    char name[32];
    int64_t us;
} lt_mark;

typedef struct {
    /* identity */
    const char *broker; /* "kafka" | "redis" */
    const char *output, *dead_letter, *input, *group, *manifest_path, *title;
    /* expectations (the manifest) */
    lt_entry *e; /* (n) */
    size_t n, cap;
    int64_t manifest_started_us;
    lt_mark marks[LT_MAX_MARKS];
    int n_marks;
    bool manifest_complete;
    /* what came back */
    lt_event *ev; /* (n_ev) */
    size_t n_ev, ev_cap;
    lt_lag_sample *lag; /* (n_lag) */
    size_t n_lag, lag_cap;
    lt_map reasons; /* dead-letter reason code -> records */
    long outputs, dead_letters, duplicates, unexpected, unparsed, seen;
    long stamped; /* outputs whose latency came from the Kafka header */
    /* the run */
    int64_t start_us, end_us, all_seen_us;
    const char *stopped; /* "complete" | "timeout" | "signal" | "error" */
    char error[LT_ERRLEN];
} lt_collect;

/* Writes the JSON report to path. 0, or -1 + err. */
int lt_report_write(const lt_collect *c, const char *path, char *err, size_t errlen);

/* Writes PREFIX.dat and PREFIX.gp next to the SVG and runs gnuplot to make
 * svg_path. Returns 0, 1 when gnuplot is not installed (a warning was
 * printed, nothing else is wrong), -1 + err on failure. */
int lt_report_plot(const lt_collect *c, const char *svg_path, char *err, size_t errlen);

/* The nearest-rank percentile p (0..100) of sorted v[0..n). */
int64_t lt_percentile(const int64_t *sorted, size_t n, double p);

#endif
