/* msg.h - the worker's message formats: decode an input message, encode an
 * output message (msgpack, JSON, Qdrant), name a dead letter's reason.
 *
 * The formats themselves (fields, types, rules, every error code) are
 * documented in schemas/README.md, with JSON Schemas and examples in
 * schemas/v1/. This header is the C contract.
 *
 * Input: one msgpack map or JSON object (the first byte decides: below 0x80
 * is JSON text, anything else msgpack), or a Redis stream entry's fields
 * (msg_decode_fields). Every byte is validated before anything is kept: the
 * whole message must be well-formed, at most lim->max_depth levels deep,
 * with every declared msgpack length and count checked against the bytes
 * that remain. Nothing is allocated until the message has passed, and then
 * exactly one block of at most len + 32 bytes: hostile declared sizes and
 * deep nesting cost neither memory nor more than linear time. msgpack-c and
 * cJSON are deliberately not used to decode: their trees cannot give 64-bit
 * integer ids exactly (cJSON), string lengths with U+0000 (cJSON), byte
 * offsets for error messages, or the raw bytes of `meta` for byte-exact
 * pass-through; msgpack_unpack also allocates per declared element count.
 *
 * Errors: an expected failure (a bad message) returns -1 and fills a
 * msg_error: a stable code (msg_code, named by msg_code_name: the strings
 * listed in schemas/README.md) and a one-line detail. The dead-letter
 * reason is msg_error_format(): "code: detail".
 *
 * Ownership: msg_decode copies what it keeps into one block owned by the
 * msg_input (free with msg_input_free); the caller may free its buffer as
 * soon as msg_decode returns. msg_buf owns a malloc'd byte array; callers
 * may take buf.data and free() it themselves.
 *
 * Threads: no function here has global state (there are only constant
 * tables); all are reentrant and may run on any thread, concurrently, on
 * distinct objects.
 *
 * Numbers: JSON numbers are read and written with strtod/snprintf, which
 * follow LC_NUMERIC: the process must keep the "C" numeric locale (embedq
 * never calls setlocale).
 */
#ifndef EQ_MSG_H
#define EQ_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- limits ---------------------------------------------------------------- */

#define MSG_DEFAULT_MAX_BYTES (1u << 20)  /* max_bytes when 0                */
#define MSG_DEFAULT_MAX_DEPTH 64          /* max_depth when 0                */
#define MSG_MAX_DEPTH_CAP     1000        /* larger max_depth values clamp   */
#define MSG_DEFAULT_MAX_META  (64u << 10) /* max_meta_bytes when 0          */
#define MSG_MIN_DIMENSIONS    32          /* smallest Matryoshka size        */
#define MSG_MAX_DIMENSIONS    65536       /* upper bound when hidden_size 0  */

/* Output encodings. */
typedef enum {
    MSG_FMT_MSGPACK = 0, /* the default */
    MSG_FMT_JSON = 1,
    MSG_FMT_QDRANT = 2,   /* JSON in the Qdrant Kafka connector's shape */
    MSG_FMT_PGVECTOR = 3, /* Kafka Connect JSON (schema + payload) for the
                             JDBC sink into a pgvector table              */
} msg_format;

/* Decoder limits. A zero field takes the default written beside it. */
typedef struct {
    size_t max_bytes;      /* whole message (or Redis entry) size: 1 MiB     */
    int max_depth;         /* nesting levels, the top map being 1: 64         */
    int hidden_size;       /* model hidden size: dimensions <= it (0: 65536)  */
    size_t max_meta_bytes; /* `meta` value's encoded size: 64 KiB             */
    msg_format out_format; /* meta must be writable in it: checked at decode  */
} msg_limits;

/* ---- errors ---------------------------------------------------------------- */

/* Stable error codes; msg_code_name gives the string used on the wire. New
 * codes are only ever appended. */
typedef enum {
    MSG_OK = 0,
    MSG_E_TOO_LARGE,               /* too_large                               */
    MSG_E_EMPTY_MESSAGE,           /* empty_message                           */
    MSG_E_MALFORMED_MSGPACK,       /* malformed_msgpack                       */
    MSG_E_MALFORMED_JSON,          /* malformed_json                          */
    MSG_E_TOO_DEEP,                /* too_deep                                */
    MSG_E_NOT_A_MAP,               /* not_a_map                               */
    MSG_E_DUPLICATE_KEY,           /* duplicate_key                           */
    MSG_E_MISSING_ID,              /* missing_id                              */
    MSG_E_ID_WRONG_TYPE,           /* id_wrong_type                           */
    MSG_E_ID_OUT_OF_RANGE,         /* id_out_of_range                         */
    MSG_E_EMPTY_ID,                /* empty_id                                */
    MSG_E_MISSING_TEXT,            /* missing_text                            */
    MSG_E_TEXT_WRONG_TYPE,         /* text_wrong_type                         */
    MSG_E_EMPTY_TEXT,              /* empty_text                              */
    MSG_E_INVALID_UTF8,            /* invalid_utf8                            */
    MSG_E_INSTRUCTION_WRONG_TYPE,  /* instruction_wrong_type                  */
    MSG_E_DIMENSIONS_WRONG_TYPE,   /* dimensions_wrong_type                   */
    MSG_E_DIMENSIONS_OUT_OF_RANGE, /* dimensions_out_of_range                */
    MSG_E_META_TOO_LARGE,          /* meta_too_large                          */
    MSG_E_META_UNCONVERTIBLE,      /* meta_unconvertible                      */
    MSG_E_TEXT_TOO_LONG,           /* text_too_long: set by the pipeline      */
    MSG_E_INVALID_TEXT,            /* invalid_text: set by the pipeline       */
    MSG_E_INTERNAL,                /* internal: out of memory; not the message's fault */
    MSG_E_OUTPUT_TOO_LARGE,        /* output_too_large: set by the Kafka sink  */
    MSG_E_TOO_MANY_DELIVERIES,     /* too_many_deliveries: set by the Redis source */
    MSG_E_INSTRUCTION_TOO_LONG,    /* instruction_too_long: set by the pipeline */
    MSG_E__COUNT
} msg_code;

#define MSG_DETAIL_LEN 200
typedef struct {
    msg_code code;               /* MSG_OK when no error                     */
    char detail[MSG_DETAIL_LEN]; /* one line, printable ASCII, NUL-terminated */
} msg_error;

/* The code's wire name ("malformed_msgpack"), a static string; "unknown"
 * for values outside the enum. */
const char *msg_code_name(msg_code c);
/* Same, for an error (the pipeline keeps this pointer). */
const char *msg_error_code_static(const msg_error *e);

/* Sets e (if not NULL) to code c with a printf-formatted detail; non-ASCII
 * and control bytes in the result become '?'. Returns -1. For the pipeline's
 * own codes (text_too_long, invalid_text) too. */
int msg_error_set(msg_error *e, msg_code c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The dead-letter reason "code: detail" ("code" alone when the detail is
 * empty), NUL-terminated and cut to fit cap. Returns the length of the full
 * reason (like snprintf). MSG_REASON_LEN always suffices. */
#define MSG_REASON_LEN (32 + 2 + MSG_DETAIL_LEN)
size_t msg_error_format(const msg_error *e, char *out, size_t cap);

/* ---- dead letters ------------------------------------------------------------
 * The dead-letter record is the original bytes unchanged plus the reason and
 * the source position (schemas/v1/dead-letter.md). The broker code attaches
 * them under these names; numbers are written in decimal ASCII. */
#define MSG_DLQ_KAFKA_ERROR     "embedq.error"            /* msg_error_format   */
#define MSG_DLQ_KAFKA_TOPIC     "embedq.source.topic"     /* input topic        */
#define MSG_DLQ_KAFKA_PARTITION "embedq.source.partition" /* "3"                */
#define MSG_DLQ_KAFKA_OFFSET    "embedq.source.offset"    /* "12345"            */
#define MSG_DLQ_REDIS_DATA      "data"                    /* the entry's `data` bytes     */
#define MSG_DLQ_REDIS_ERROR     "error"                   /* msg_error_format             */
#define MSG_DLQ_REDIS_SOURCE_ID "source_id"               /* input entry id "ms-seq"      */

/* Only on a dead letter whose original value did not fit the producer's
 * message.max.bytes (or that the broker refused as too large): */
#define MSG_DLQ_KAFKA_CUT         "embedq.cut"             /* "value" | "value,key,headers" */
#define MSG_DLQ_KAFKA_CUT_REASON  "embedq.cut.reason"      /* why, with the limit           */
#define MSG_DLQ_KAFKA_ORIG_SIZE   "embedq.original.size"   /* value bytes, "1009994"        */
#define MSG_DLQ_KAFKA_ORIG_SHA256 "embedq.original.sha256" /* of the value, lower-case hex  */

/* ---- the decoded input ------------------------------------------------------ */

typedef enum {
    MSG_ID_STR = 1,  /* a string id (non-empty, valid UTF-8)      */
    MSG_ID_INT = 2,  /* a negative integer id: id_int             */
    MSG_ID_UINT = 3, /* a non-negative integer id: id_uint        */
} msg_id_kind;

typedef enum {
    MSG_ENC_MSGPACK = 1,
    MSG_ENC_JSON = 2,
    MSG_ENC_FIELDS = 3, /* Redis plain fields (no meta) */
} msg_encoding;

/* A decoded message. Every pointer points into one block owned by the
 * msg_input; strings are also NUL-terminated (but may contain NUL bytes:
 * use the lengths). */
typedef struct {
    msg_encoding encoding; /* of the message it came from                */
    msg_id_kind id_kind;
    int64_t id_int;   /* MSG_ID_INT                                        */
    uint64_t id_uint; /* MSG_ID_UINT                                       */
    const char *id;   /* text form: the string, or the decimal integer     */
    size_t id_len;
    const char *text; /* (text_len) valid UTF-8, non-empty                 */
    size_t text_len;
    const char *instruction; /* NULL when absent (absent, null or "")     */
    size_t instruction_len;
    int dimensions;      /* 0 = the model's default (hidden_size)           */
    const uint8_t *meta; /* the raw bytes of the meta value, in meta_encoding; NULL when absent */
    size_t meta_len;
    msg_encoding meta_encoding;
    void *block_; /* the owned allocation */
} msg_input;

/* Decodes one message (msgpack or JSON, by its first byte). lim may be
 * NULL (all defaults). Returns 0 and fills *out, or -1 with *err filled and
 * *out zeroed (nothing to free). Never reads outside buf[0..len). */
int msg_decode(const void *buf, size_t len, const msg_limits *lim, msg_input *out, msg_error *err);

/* Decodes a Redis stream entry given as n field/value pairs (binary-safe:
 * lengths given, no NULs needed). A `data` field holds a whole message
 * (msg_decode; the other fields are then ignored). Otherwise the plain
 * fields `id`, `text`, `instruction`, `dimensions` are read: all are
 * strings, so the id is a string id and dimensions must be a decimal
 * integer. Unknown fields are ignored; a repeated `data`, or (without
 * `data`) a repeated plain field, is duplicate_key. The sum of the values' lengths is capped by
 * max_bytes. Returns and fills like msg_decode. */
int msg_decode_fields(const char *const *names, const size_t *name_lens, const char *const *values,
                      const size_t *value_lens, int n, const msg_limits *lim, msg_input *out,
                      msg_error *err);

/* Reads the string value of the top-level key `key` of the JSON object
 * buf[0..len), decoded exactly as msg_decode decodes `text`: escapes undone,
 * U+0000 kept as a NUL byte, UTF-8 checked after unescaping. For tools that
 * read JSON lines without the message schema (`embedq embed`, `tokenize`).
 * Returns 1 with a malloc'd, NUL-terminated copy in *out (its length, NULs
 * inside counted, in *out_len; the caller frees it), 0 when the key is
 * absent or null (*out = NULL), or -1 with *err filled: malformed JSON
 * (max_depth levels at most; <= 0 means 64), a repeated key, a value that is
 * not a string, or invalid UTF-8. */
int msg_json_string_field(const void *buf, size_t len, const char *key, int max_depth, char **out,
                          size_t *out_len, msg_error *err);

/* One decoded string of msg_json_string_list. */
typedef struct {
    const char *s; /* NUL-terminated; NULs inside are counted in len */
    size_t len;
    size_t bad; /* decoded offset of the first invalid UTF-8, or SIZE_MAX */
} msg_json_str;

/* The strings of the top-level key `key` of the JSON object buf[0..len),
 * which is a string (1) or an array of strings, each decoded as
 * msg_json_string_field decodes (U+0000 kept). Invalid UTF-8 is not an
 * error here, in these strings or any other of the object (other fields'
 * strings are not checked): each string's `bad` says where it starts, so
 * that the caller can name the element. Returns the count with *out one malloc'd block (the
 * caller frees *out), 0 when the key is absent, null, an empty array, or not
 * a string or an array of only strings (*out = NULL), or -1 with *err filled:
 * malformed JSON, the key repeated, out of memory. The embeddings API
 * reads `input` with it, so that an input sent over HTTP and through the
 * queue is the same bytes. */
int msg_json_string_list(const void *buf, size_t len, const char *key, int max_depth,
                         msg_json_str **out, msg_error *err);

/* Frees what msg_decode allocated and zeroes *in. Safe on a zeroed input
 * and twice. */
void msg_input_free(msg_input *in);

/* ---- output ---------------------------------------------------------------- */

/* A growable byte buffer. Zero-initialize; data is malloc'd (free() it, or
 * msg_buf_free). Encoders append. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} msg_buf;

void msg_buf_free(msg_buf *b);
/* Makes room for n more bytes. Returns 0, or -1 when out of memory. */
int msg_buf_reserve(msg_buf *b, size_t n);

/* The encoders append one output message for input `in` to out.
 *   model:     the `model` field (UTF-8)
 *   v:         (d) the embedding, finite float32 values (asserted)
 *   d:         its dimensions (>= 1)
 *   tokens:    tokens the model read for this message, after truncation
 *   truncated: the text was cut to the model's maximum length
 * Return 0, or -1 with *err set (out left as it was): meta_unconvertible
 * when the input's meta cannot be written in this encoding (never, if
 * msg_decode ran with lim->out_format set to this format), internal when
 * out of memory.
 *
 * msgpack: map {id, model, dimensions, embedding (float32 array), tokens,
 *          truncated, meta (only if the input had it)}.
 * json:    the same keys as a JSON object; floats always with '.' or 'e'
 *          (9 significant digits: round-trips float32).
 * qdrant:  {"collection_name", "id" (point id, see msg_qdrant_point_id),
 *          "vector": [...], "payload": {"id" (the input id), "model",
 *          "tokens", "truncated", "meta"}}.
 * pgvector: Kafka Connect's JsonConverter envelope (schemas.enable=true):
 *          {"schema": {struct embedq.Embedding: id string, model string,
 *          dimensions int32, embedding string, tokens int32, truncated
 *          boolean, meta optional string}, "payload": {...}} where id is
 *          the id's text form, embedding pgvector's text literal
 *          "[0.1,-0.2,...]" and meta the meta value as JSON text (null when
 *          absent): with `stringtype=unspecified` on the JDBC URL,
 *          PostgreSQL casts them into vector and jsonb columns. */
int msg_encode_msgpack(const msg_input *in, const char *model, const float *v, int d, int tokens,
                       bool truncated, msg_buf *out, msg_error *err);
int msg_encode_json(const msg_input *in, const char *model, const float *v, int d, int tokens,
                    bool truncated, msg_buf *out, msg_error *err);
int msg_encode_qdrant(const msg_input *in, const char *collection, const char *model,
                      const float *v, int d, int tokens, bool truncated, msg_buf *out,
                      msg_error *err);
int msg_encode_pgvector(const msg_input *in, const char *model, const float *v, int d, int tokens,
                        bool truncated, msg_buf *out, msg_error *err);

/* The output record's key: the input record's key when key_len > 0, else
 * the id's text form (in->id). Appended to out. Returns 0, or -1 (internal:
 * out of memory). */
int msg_output_key(const msg_input *in, const void *key, size_t key_len, msg_buf *out,
                   msg_error *err);

/* The Qdrant point id of an input: returns 1 and sets *num for an unsigned
 * integer id <= 2^53 (the connector reads ids through a double: larger ones
 * would collide); returns 0 and writes a 36-char lowercase UUID + NUL into
 * uuid otherwise: a string id that already is a UUID (8-4-4-4-12 hex, any
 * case) normalized to lowercase, else the UUIDv5 of the id's text form
 * (decimal for integers, the UTF-8 bytes for strings) in MSG_UUID_NAMESPACE. */
#define MSG_QDRANT_MAX_INT_ID (UINT64_C(1) << 53)
/* uuid5(NAMESPACE_URL, "embedq:qdrant-point-id") */
#define MSG_UUID_NAMESPACE "183a4d25-16f9-5144-9bf3-15d42236d65d"
int msg_qdrant_point_id(const msg_input *in, uint64_t *num, char uuid[37]);

/* RFC 9562 UUIDv5: SHA-1 of the 16 namespace bytes then name; lowercase
 * text + NUL into out. */
void msg_uuid5(const uint8_t ns[16], const void *name, size_t len, char out[37]);

#endif
