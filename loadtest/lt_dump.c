/* lt_dump.c - dump files: msgpack maps written with msgpack-c's packer and
 * read back with its streaming unpacker (lt_dump.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "lt.h"
#include "lt_dump.h"

struct lt_dump_writer {
    FILE *f;
    msgpack_packer pk;
    const char *path;
    bool failed; /* a pack call failed (the FILE's write error) */
};

struct lt_dump_reader {
    FILE *f;
    msgpack_unpacker u;
    msgpack_unpacked res;
    lt_field *fields; /* (fields_cap) the current record's headers/fields */
    int fields_cap;
    long index; /* records returned so far */
    bool eof;
};

const char *lt_broker_name(lt_broker_kind b)
{
    return b == LT_BROKER_KAFKA ? "kafka" : b == LT_BROKER_REDIS ? "redis" : "unknown";
}

/* ---- writing ---------------------------------------------------------------------- */

/* msgpack-c's write callback on a FILE (its own msgpack_fbuffer_write
 * reports a zero-length write, e.g. an empty header value, as a failure). */
static int file_write(void *data, const char *buf, size_t len)
{
    return len == 0 || fwrite(buf, 1, len, (FILE *)data) == len ? 0 : -1;
}

static void pack_cstr(lt_dump_writer *w, const char *s)
{
    size_t n = strlen(s);
    w->failed |= msgpack_pack_str(&w->pk, n) || msgpack_pack_str_body(&w->pk, s, n);
}

static void pack_bin(lt_dump_writer *w, const void *p, size_t n)
{
    if (!p) {
        w->failed |= msgpack_pack_nil(&w->pk) != 0;
        return;
    }
    w->failed |= msgpack_pack_bin(&w->pk, n) || msgpack_pack_bin_body(&w->pk, p, n);
}

static void pack_i64(lt_dump_writer *w, int64_t v)
{
    w->failed |= msgpack_pack_int64(&w->pk, v) != 0;
}

lt_dump_writer *lt_dump_create(const char *path, const lt_dump_header *h, char *err, size_t errlen)
{
    lt_dump_writer *w = calloc(1, sizeof *w);
    if (!w) return eq_err(err, errlen, "out of memory"), NULL;
    w->f = fopen(path, "wb");
    if (!w->f) {
        eq_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    w->path = path;
    msgpack_packer_init(&w->pk, w->f, file_write);
    w->failed |= msgpack_pack_map(&w->pk, 5) != 0;
    pack_cstr(w, "format");
    pack_cstr(w, LT_DUMP_FORMAT);
    pack_cstr(w, "version");
    pack_i64(w, 1);
    pack_cstr(w, "broker");
    pack_cstr(w, lt_broker_name(h->broker));
    pack_cstr(w, "source");
    pack_cstr(w, h->source);
    pack_cstr(w, "recorded_at_us");
    pack_i64(w, h->recorded_at_us);
    if (w->failed) {
        eq_err(err, errlen, "writing %s: %s", path, strerror(errno));
        fclose(w->f);
        free(w);
        return NULL;
    }
    return w;
}

int lt_dump_write(lt_dump_writer *w, const lt_record *r, char *err, size_t errlen)
{
    if (r->entry_id) { /* Redis */
        w->failed |= msgpack_pack_map(&w->pk, 3) != 0;
        pack_cstr(w, "id");
        w->failed |= msgpack_pack_str(&w->pk, r->entry_id_len) ||
                     msgpack_pack_str_body(&w->pk, r->entry_id, r->entry_id_len);
        pack_cstr(w, "timestamp_ms");
        pack_i64(w, r->timestamp_ms);
        pack_cstr(w, "fields");
    } else { /* Kafka */
        w->failed |= msgpack_pack_map(&w->pk, 7) != 0;
        pack_cstr(w, "partition");
        pack_i64(w, r->partition);
        pack_cstr(w, "offset");
        pack_i64(w, r->offset);
        pack_cstr(w, "timestamp_ms");
        pack_i64(w, r->timestamp_ms);
        pack_cstr(w, "timestamp_type");
        pack_cstr(w, r->ts_type ? r->ts_type : "none");
        pack_cstr(w, "key");
        pack_bin(w, r->key, r->key_len);
        pack_cstr(w, "value");
        pack_bin(w, r->value, r->value_len);
        pack_cstr(w, "headers");
    }
    w->failed |= msgpack_pack_array(&w->pk, (size_t)r->n_fields) != 0;
    for (int i = 0; i < r->n_fields; i++) {
        const lt_field *f = &r->fields[i];
        w->failed |= msgpack_pack_array(&w->pk, 2) != 0;
        if (r->entry_id)
            pack_bin(w, f->name, f->name_len);
        else
            w->failed |= msgpack_pack_str(&w->pk, f->name_len) ||
                         msgpack_pack_str_body(&w->pk, f->name, f->name_len);
        pack_bin(w, f->value, f->value_len);
    }
    if (w->failed) return eq_err(err, errlen, "writing %s: %s", w->path, strerror(errno));
    return 0;
}

int lt_dump_close_writer(lt_dump_writer *w, char *err, size_t errlen)
{
    if (!w) return 0;
    int rc = 0;
    if (fflush(w->f) || ferror(w->f) || w->failed)
        rc = eq_err(err, errlen, "writing %s: %s", w->path, strerror(errno));
    if (fclose(w->f) && !rc) rc = eq_err(err, errlen, "closing %s: %s", w->path, strerror(errno));
    free(w);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------- */

/* The value of key k in map m, or NULL. */
static const msgpack_object *map_get(const msgpack_object *m, const char *k)
{
    size_t n = strlen(k);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *key = &m->via.map.ptr[i].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
            !memcmp(key->via.str.ptr, k, n))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* Bytes of a str or bin object (nil: *p = NULL). Returns 0, or -1 for
 * another type. */
static int get_bytes(const msgpack_object *o, const uint8_t **p, size_t *n)
{
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        *p = NULL, *n = 0;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = (const uint8_t *)o->via.str.ptr, *n = o->via.str.size;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = (const uint8_t *)o->via.bin.ptr, *n = o->via.bin.size;
        return 0;
    }
    return -1;
}

static int get_i64(const msgpack_object *o, int64_t *v)
{
    if (!o) return -1;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    return -1;
}

/* Unpacks the next object into r->res: 1, 0 at a clean end, -1 + err. */
static int next_object(lt_dump_reader *r, char *err, size_t errlen)
{
    for (;;) {
        msgpack_unpack_return ur = msgpack_unpacker_next(&r->u, &r->res);
        if (ur == MSGPACK_UNPACK_SUCCESS || ur == MSGPACK_UNPACK_EXTRA_BYTES) return 1;
        if (ur == MSGPACK_UNPACK_PARSE_ERROR)
            return eq_err(err, errlen, "record %ld: not msgpack", r->index + 1);
        if (ur == MSGPACK_UNPACK_NOMEM_ERROR) return eq_err(err, errlen, "out of memory");
        /* CONTINUE: needs more bytes. */
        if (r->eof) {
            if (msgpack_unpacker_message_size(&r->u) > 0)
                return eq_err(err, errlen, "record %ld: truncated at the end of the file",
                              r->index + 1);
            return 0;
        }
        if (!msgpack_unpacker_reserve_buffer(&r->u, 1 << 16))
            return eq_err(err, errlen, "out of memory");
        size_t got =
            fread(msgpack_unpacker_buffer(&r->u), 1, msgpack_unpacker_buffer_capacity(&r->u), r->f);
        if (got == 0) {
            if (ferror(r->f)) return eq_err(err, errlen, "read error: %s", strerror(errno));
            r->eof = true;
        }
        msgpack_unpacker_buffer_consumed(&r->u, got);
    }
}

lt_dump_reader *lt_dump_open(const char *path, lt_dump_header *h, char *err, size_t errlen)
{
    char sub[LT_ERRLEN];
    lt_dump_reader *r = calloc(1, sizeof *r);
    if (!r) return eq_err(err, errlen, "out of memory"), NULL;
    r->f = fopen(path, "rb");
    if (!r->f) {
        eq_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(r);
        return NULL;
    }
    if (!msgpack_unpacker_init(&r->u, 1 << 16)) {
        eq_err(err, errlen, "out of memory");
        fclose(r->f);
        free(r);
        return NULL;
    }
    msgpack_unpacked_init(&r->res);
    int rc = next_object(r, sub, sizeof sub);
    const msgpack_object *o = &r->res.data;
    const uint8_t *fmt = NULL, *broker = NULL, *source = NULL;
    size_t fmt_n = 0, broker_n = 0, source_n = 0;
    int64_t version = 0;
    if (rc <= 0 || o->type != MSGPACK_OBJECT_MAP || get_bytes(map_get(o, "format"), &fmt, &fmt_n) ||
        !fmt || fmt_n != strlen(LT_DUMP_FORMAT) || memcmp(fmt, LT_DUMP_FORMAT, fmt_n)) {
        eq_err(err, errlen, "%s is not an embedq-loadtest dump (no header map with format \"%s\")",
               path, LT_DUMP_FORMAT);
        goto fail;
    }
    if (get_i64(map_get(o, "version"), &version) || version != 1) {
        eq_err(err, errlen, "%s: dump version %lld is not supported (this tool reads 1)", path,
               (long long)version);
        goto fail;
    }
    memset(h, 0, sizeof *h);
    if (get_bytes(map_get(o, "broker"), &broker, &broker_n) || !broker) broker_n = 0;
    if (broker_n == 5 && !memcmp(broker, "kafka", 5))
        h->broker = LT_BROKER_KAFKA;
    else if (broker_n == 5 && !memcmp(broker, "redis", 5))
        h->broker = LT_BROKER_REDIS;
    else {
        eq_err(err, errlen, "%s: header broker must be \"kafka\" or \"redis\"", path);
        goto fail;
    }
    if (!get_bytes(map_get(o, "source"), &source, &source_n) && source)
        snprintf(h->source, sizeof h->source, "%.*s", (int)source_n, (const char *)source);
    if (get_i64(map_get(o, "recorded_at_us"), &h->recorded_at_us)) h->recorded_at_us = 0;
    return r;
fail:
    lt_dump_close(r);
    return NULL;
}

/* Reads the [[name, value], ...] array into r->fields. */
static int read_fields(lt_dump_reader *r, const msgpack_object *a, lt_record *rec, char *err,
                       size_t errlen)
{
    if (!a || a->type == MSGPACK_OBJECT_NIL) return 0;
    if (a->type != MSGPACK_OBJECT_ARRAY)
        return eq_err(err, errlen, "record %ld: headers/fields must be an array", r->index + 1);
    if ((int)a->via.array.size > r->fields_cap) {
        if (a->via.array.size > 1u << 20)
            return eq_err(err, errlen, "record %ld: too many fields", r->index + 1);
        lt_field *f = realloc(r->fields, a->via.array.size * sizeof *f);
        if (!f) return eq_err(err, errlen, "out of memory");
        r->fields = f;
        r->fields_cap = (int)a->via.array.size;
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *p = &a->via.array.ptr[i];
        lt_field *f = &r->fields[i];
        const uint8_t *name;
        if (p->type != MSGPACK_OBJECT_ARRAY || p->via.array.size != 2 ||
            get_bytes(&p->via.array.ptr[0], &name, &f->name_len) || !name ||
            get_bytes(&p->via.array.ptr[1], &f->value, &f->value_len))
            return eq_err(err, errlen, "record %ld: field %u is not [name, value]", r->index + 1,
                          i);
        f->name = (const char *)name;
    }
    rec->fields = r->fields;
    rec->n_fields = (int)a->via.array.size;
    return 0;
}

int lt_dump_next(lt_dump_reader *r, lt_record *rec, char *err, size_t errlen)
{
    int rc = next_object(r, err, errlen);
    if (rc <= 0) return rc;
    const msgpack_object *o = &r->res.data;
    memset(rec, 0, sizeof *rec);
    rec->partition = -1;
    rec->offset = -1;
    rec->timestamp_ms = -1;
    if (o->type != MSGPACK_OBJECT_MAP)
        return eq_err(err, errlen, "record %ld: not a map", r->index + 1);
    const uint8_t *id = NULL, *tstype = NULL;
    size_t id_n = 0, tstype_n = 0;
    if (get_bytes(map_get(o, "id"), &id, &id_n)) id = NULL;
    int64_t v;
    if (!get_i64(map_get(o, "timestamp_ms"), &v)) rec->timestamp_ms = v;
    if (id) { /* Redis */
        rec->entry_id = (const char *)id;
        rec->entry_id_len = id_n;
        if (read_fields(r, map_get(o, "fields"), rec, err, errlen)) return -1;
    } else {
        if (get_i64(map_get(o, "partition"), &v) || v < 0 || v > INT32_MAX)
            return eq_err(err, errlen, "record %ld: no partition (nor a Redis entry id)",
                          r->index + 1);
        rec->partition = (int32_t)v;
        if (!get_i64(map_get(o, "offset"), &v)) rec->offset = v;
        if (!get_bytes(map_get(o, "timestamp_type"), &tstype, &tstype_n) && tstype)
            rec->ts_type = tstype_n == 6 && !memcmp(tstype, "create", 6)         ? "create"
                           : tstype_n == 10 && !memcmp(tstype, "log_append", 10) ? "log_append"
                                                                                 : "none";
        if (get_bytes(map_get(o, "key"), &rec->key, &rec->key_len) ||
            get_bytes(map_get(o, "value"), &rec->value, &rec->value_len))
            return eq_err(err, errlen, "record %ld: key and value must be bin, str or nil",
                          r->index + 1);
        if (read_fields(r, map_get(o, "headers"), rec, err, errlen)) return -1;
    }
    r->index++;
    return 1;
}

void lt_dump_close(lt_dump_reader *r)
{
    if (!r) return;
    msgpack_unpacked_destroy(&r->res);
    msgpack_unpacker_destroy(&r->u);
    if (r->f) fclose(r->f);
    free(r->fields);
    free(r);
}
