/* lt_manifest.h - the manifest of a `replay` run: every message the broker
 * accepted, with its send time, its position and its id; read by `collect`
 * (possibly while replay still writes it) to know what to expect.
 *
 * Text, one line each (docs/loadtest.md):
 *
 *   # embedq-loadtest manifest 1
 *   # broker kafka|redis
 *   # target <topic or stream>
 *   # started_us <wall clock of the first send, us since the epoch>
 *   # mark <name> <us>              phase boundaries (burst_start, end, ...)
 *   <sent_us>\t<position>\t<kind>\t<id>
 *   # end <count>                   written last: the manifest is complete
 *
 * position: Kafka "PARTITION:OFFSET", Redis the entry id "MS-SEQ".
 * kind: "s" string id, "i" integer id, "-" none (the message has no id the
 * worker could read: it will be dead-lettered, matched by position).
 * id: the id's text (the string, or the integer in decimal), with tab,
 * newline, CR, backslash and control bytes escaped (lt_escape). Lines are
 * in delivery order, not necessarily send order.
 */
#ifndef LT_MANIFEST_H
#define LT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LT_MANIFEST_MAGIC "# embedq-loadtest manifest 1"

typedef struct {
    FILE *f;
    const char *path;
    long count;
    bool failed;
} lt_manifest_writer;

/* Creates path and writes the first three header lines. 0 or -1 + err. */
int lt_manifest_create(lt_manifest_writer *w, const char *path, const char *broker,
                       const char *target, char *err, size_t errlen);
void lt_manifest_started(lt_manifest_writer *w, int64_t us);
void lt_manifest_mark(lt_manifest_writer *w, const char *name, int64_t us);
void lt_manifest_add(lt_manifest_writer *w, int64_t sent_us, const char *pos, char kind,
                     const void *id, size_t id_len);
void lt_manifest_flush(lt_manifest_writer *w);
/* Writes "# end COUNT", closes. 0, or -1 + err when any write failed. */
int lt_manifest_close(lt_manifest_writer *w, char *err, size_t errlen);

/* Reading, incrementally. */
typedef struct {
    void (*entry)(void *arg, int64_t sent_us, const char *pos, char kind, const char *id,
                  size_t id_len);
    void (*mark)(void *arg, const char *name, int64_t us);
} lt_manifest_cb;

typedef struct {
    int fd;
    const char *path;
    char *buf; /* (cap) bytes read and not yet consumed: [0, len) */
    size_t len, cap;
    long line_no;
    long entries;
    bool header_ok; /* the magic line was seen */
    bool ended;     /* "# end" was seen */
    long end_count;
    char broker[16];
    char target[256];
    int64_t started_us; /* 0 until seen */
} lt_manifest_reader;

/* Opens path. 0, or -1 + err (errno ENOENT: not created yet). */
int lt_manifest_open(lt_manifest_reader *r, const char *path, char *err, size_t errlen);
/* Reads the complete lines available now, calling cb for each. Returns the
 * number of lines read (0: nothing new), or -1 + err for a malformed line. */
long lt_manifest_poll(lt_manifest_reader *r, const lt_manifest_cb *cb, void *arg, char *err,
                      size_t errlen);
void lt_manifest_close_reader(lt_manifest_reader *r);

#endif
