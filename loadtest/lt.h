/* lt.h - shared helpers of `embedq-loadtest`: flags, clocks, growable
 * buffers, a string map, escaping, and the stop flag set by signals.
 *
 * The tool (docs/loadtest.md) has three subcommands:
 *   record   a Kafka topic or a Redis stream -> a dump file (lt_dump.h)
 *   replay   a dump or a corpus of documents -> a topic or stream, at a rate
 *            profile (lt_profile.h), writing a manifest (lt_manifest.h)
 *   collect  outputs + dead letters + the group's lag -> a JSON report and
 *            an SVG plot (lt_report.h)
 *
 * Errors: functions that can fail for expected reasons (a missing file, an
 * unreachable broker, a malformed dump) return a negative value and write
 * one line into a caller-supplied `char *err, size_t errlen`; they never
 * exit(). Invariants use EQ_ASSERT (file:line, abort). Out of memory is an
 * expected failure like the others ("out of memory").
 *
 * Threads: the tool is single-threaded except for librdkafka's own threads;
 * librdkafka's callbacks (delivery reports) are served from rd_kafka_poll
 * on the main thread.
 */
#ifndef LT_H
#define LT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h" /* eq_err, EQ_ASSERT (engine/common.h) */

#define LT_ERRLEN 512
#define LT_PROG   "embedq-loadtest"

/* The Kafka header replay stamps on every record: its send time, decimal
 * microseconds since the epoch. The worker copies input headers to the
 * output and to dead letters (docs/kafka.md), so collect reads it back. */
#define LT_SENT_HEADER "embedq-loadtest-sent-us"

/* The subcommands (cmd_*.c): argv[0] is the subcommand's name. Return the
 * process exit status. */
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_collect(int argc, char **argv);

/* Prints "embedq-loadtest CMD: message" on stderr. */
void lt_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- clocks ------------------------------------------------------------------ */

/* Wall clock (CLOCK_REALTIME) in microseconds since the epoch: comparable
 * with broker timestamps (Kafka record timestamps, Redis entry ids). */
int64_t lt_now_us(void);
/* Sleeps us microseconds (or until a signal). */
void lt_sleep_us(int64_t us);

/* ---- stop flag ----------------------------------------------------------------- */

/* Set to 1 by SIGINT/SIGTERM once lt_install_signals() ran: the commands stop
 * what they do, finish their output (flush, report) and exit. The one
 * process-wide variable: a signal handler can reach nothing else. */
extern volatile sig_atomic_t lt_stop;
void lt_install_signals(void);

/* ---- flags --------------------------------------------------------------------- */

typedef enum { LT_STR, LT_INT, LT_DBL, LT_BOOL, LT_LIST } lt_kind;

#define LT_LIST_MAX 32
typedef struct {
    const char *items[LT_LIST_MAX];
    int n;
} lt_list;

/* One flag: `--name VALUE` or `--name=VALUE` (LT_BOOL: `--name` alone).
 * dst: const char ** | long * | double * | bool * | lt_list *.
 * min/max bound LT_INT and LT_DBL values (inclusive). */
typedef struct {
    const char *name; /* without "--" */
    lt_kind kind;
    void *dst;
    double min, max;
    const char *help; /* one line; the default is printed from *dst */
} lt_flag;

typedef struct {
    const char *name;    /* "replay"                       */
    const char *usage;   /* one line of synopsis           */
    const char *summary; /* a paragraph printed by --help  */
} lt_command;

/* Parses argv[1..argc). Returns 0 on success, 1 when --help was printed
 * (exit 0), 2 on a bad flag (a message naming the flag was printed). */
int lt_parse_flags(const lt_command *cmd, const lt_flag *flags, int nflags, int argc, char **argv);

/* Prints "embedq-loadtest CMD: MESSAGE (see --help)" and returns 2. */
int lt_usage_error(const lt_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- buffers ------------------------------------------------------------------- */

/* A growable byte buffer; zero-initialize. data is malloc'd (lt_buf_free). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} lt_buf;

int lt_buf_reserve(lt_buf *b, size_t n); /* room for n more bytes; 0 or -1 (OOM) */
int lt_buf_add(lt_buf *b, const void *p, size_t n);
int lt_buf_addf(lt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lt_buf_free(lt_buf *b);

/* Appends s[0..len) as a JSON string literal (quotes included). Bytes that
 * are not valid UTF-8 become U+FFFD. Returns 0 or -1 (OOM). */
int lt_buf_json_string(lt_buf *b, const void *s, size_t len);
/* The same, to a FILE. */
void lt_json_string(FILE *f, const void *s, size_t len);

/* True if s[0..len) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool lt_utf8_valid(const void *s, size_t len);

/* ---- escaping (manifest lines) ------------------------------------------------ */

/* Appends s[0..len) with '\\', tab, newline, CR and other bytes < 0x20 or
 * 0x7f escaped (\\ \t \n \r \xHH): the result has no tab or newline. */
int lt_escape(lt_buf *b, const void *s, size_t len);
/* Unescapes in place; returns the new length, or -1 for a bad escape. */
long lt_unescape(char *s, size_t len);

/* ---- string map ----------------------------------------------------------------- */

/* Open-addressing hash map from byte strings (copied) to int64 values. */
typedef struct {
    struct lt_map_slot *slots;
    size_t cap, n;
} lt_map;

/* Returns a pointer to the value of key, or NULL when absent. */
int64_t *lt_map_get(const lt_map *m, const void *key, size_t len);
/* Inserts key with value v if absent. Returns a pointer to the (existing or
 * new) value, or NULL when out of memory. *added (optional) tells which. */
int64_t *lt_map_put(lt_map *m, const void *key, size_t len, int64_t v, bool *added);
/* Calls fn for every entry (in no particular order). */
void lt_map_each(const lt_map *m, void (*fn)(const char *key, size_t len, int64_t v, void *arg),
                 void *arg);
void lt_map_free(lt_map *m);

/* ---- misc ---------------------------------------------------------------------- */

/* Parses a decimal int64 from s[0..len) (the whole of it). 0 or -1. */
int lt_parse_i64(const char *s, size_t len, int64_t *out);
/* Writes "0.25" style seconds with millisecond precision. */
double lt_us_to_s(int64_t us);

#endif
