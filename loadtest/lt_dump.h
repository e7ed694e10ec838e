/* lt_dump.h - the dump file of `record` / `replay`: Kafka records or Redis
 * stream entries, with everything needed to replay them.
 *
 * Format (docs/loadtest.md): a plain concatenation of msgpack maps (what
 * msgpack.Unpacker reads in Python). The first map is the header:
 *
 *   {"format": "embedq-loadtest-dump", "version": 1, "broker": "kafka"|"redis",
 *    "source": "<topic or stream>", "recorded_at_us": <int>}
 *
 * then one map per record. Kafka:
 *
 *   {"partition": int, "offset": int, "timestamp_ms": int (-1: none),
 *    "timestamp_type": "create"|"log_append"|"none",
 *    "key": bin|nil, "value": bin|nil, "headers": [[str, bin|nil], ...]}
 *
 * Redis (one stream entry; fields in order, names and values binary-safe):
 *
 *   {"id": "1700000000000-0", "timestamp_ms": int, "fields": [[bin, bin], ...]}
 *
 * Readers ignore keys they do not know (later versions only add keys).
 *
 * Ownership: the writer copies nothing (it packs at once). A record returned
 * by lt_dump_next points into the reader's current msgpack zone and stays
 * valid until the next lt_dump_next or lt_dump_close.
 */
#ifndef LT_DUMP_H
#define LT_DUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_DUMP_FORMAT "embedq-loadtest-dump"

typedef enum { LT_BROKER_KAFKA = 1, LT_BROKER_REDIS = 2 } lt_broker_kind;

/* A Kafka header or a Redis field. value NULL = a null header value. */
typedef struct {
    const char *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
} lt_field;

typedef struct {
    int64_t timestamp_ms; /* Kafka timestamp; Redis: the entry id's ms; -1 none */
    const char *ts_type;  /* Kafka: "create" | "log_append" | "none"           */
    int32_t partition;    /* Kafka; -1 for Redis                                */
    int64_t offset;       /* Kafka; -1 for Redis                                */
    const char *entry_id; /* Redis: "ms-seq" (entry_id_len); NULL for Kafka     */
    size_t entry_id_len;
    const uint8_t *key; /* Kafka: NULL = no key                               */
    size_t key_len;
    const uint8_t *value; /* Kafka: NULL = null value                           */
    size_t value_len;
    const lt_field *fields; /* Kafka headers or Redis fields, in order            */
    int n_fields;
} lt_record;

typedef struct {
    lt_broker_kind broker;
    char source[256];
    int64_t recorded_at_us;
} lt_dump_header;

typedef struct lt_dump_writer lt_dump_writer;
typedef struct lt_dump_reader lt_dump_reader;

/* Creates (truncates) path and writes the header. NULL + err on failure. */
lt_dump_writer *lt_dump_create(const char *path, const lt_dump_header *h, char *err, size_t errlen);
/* Appends one record. 0, or -1 + err (a write error). */
int lt_dump_write(lt_dump_writer *w, const lt_record *r, char *err, size_t errlen);
/* Flushes, closes and frees. 0, or -1 + err when a write failed. */
int lt_dump_close_writer(lt_dump_writer *w, char *err, size_t errlen);

/* Opens a dump and reads its header. NULL + err on failure (missing file,
 * not a dump, unknown version). */
lt_dump_reader *lt_dump_open(const char *path, lt_dump_header *h, char *err, size_t errlen);
/* Reads the next record: 1, 0 at the end, -1 + err (truncated or malformed;
 * the message says which record). */
int lt_dump_next(lt_dump_reader *r, lt_record *rec, char *err, size_t errlen);
void lt_dump_close(lt_dump_reader *r);

const char *lt_broker_name(lt_broker_kind b);

#endif
