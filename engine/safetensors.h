/* safetensors.h - read (mmap) and write the safetensors format.
 *
 * Layout of a file:  u64 little-endian N | N bytes of JSON header | data.
 * The header is one JSON object: an optional "__metadata__" object of string
 * values, and one entry per tensor:
 *     "name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]}
 * with offsets relative to the start of the data section.
 *
 * st_parse_header() is the whole trust boundary: it is standalone (no I/O),
 * bounds-checks everything and is the libFuzzer target
 * (tests/fuzz/fuzz_safetensors.c). What it checks:
 *   - N <= len - 8 and N <= ST_MAX_HEADER (100 MB);
 *   - the header is a JSON object; "__metadata__", if present, is an object
 *     of strings;
 *   - every tensor: a known dtype, a shape of at most ST_MAX_DIMS
 *     non-negative integers whose element count does not overflow,
 *     data_offsets [begin, end] with begin <= end,
 *     end - begin == numel * dtype size, end <= data section size
 *     (len - 8 - N);
 *   - no two tensors overlap (empty ones excepted), no duplicate names.
 * Messages name the tensor; st_open() prefixes them with the file path.
 *
 * Ownership: st_header and st_file own their strings and arrays; free them
 * with st_header_free / st_close. st_open maps the file read-only; tensor
 * data pointers (st_data) are valid until st_close.
 *
 * The writer streams: st_writer_open writes the header for a list of tensor
 * descriptions (offsets assigned in the given order, no gaps), then the
 * caller appends each tensor's bytes in that order with st_writer_write, in
 * chunks of any size; st_writer_close checks the byte count. Nothing is held
 * in memory but the header.
 *
 * Thread safety: none of these functions share state; an open st_file is
 * read-only and may be read from any thread.
 */
#ifndef EQ_SAFETENSORS_H
#define EQ_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_MAX_DIMS   8
#define ST_MAX_HEADER (100u * 1000u * 1000u) /* bytes of JSON header */

typedef enum {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_F8_E8M0,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
    ST_NDTYPES
} st_dtype;

/* Size of one element in bytes; name as written in headers ("BF16"). */
size_t st_dtype_size(st_dtype t);
const char *st_dtype_name(st_dtype t);
/* Returns 0 and *out for a known dtype string, -1 otherwise. */
int st_dtype_parse(const char *s, st_dtype *out);

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel; /* product of shape (1 for a scalar)            */
    uint64_t begin; /* byte offsets into the data section           */
    uint64_t end;
} st_tensor;

typedef struct {
    uint64_t header_len; /* N                                         */
    uint64_t data_start; /* 8 + N: file offset of the data section    */
    uint64_t data_len;   /* bytes in the data section                 */
    st_tensor *tensors;  /* n_tensors, in header order                */
    size_t n_tensors;
    size_t *by_name;  /* indices into tensors, sorted by name      */
    char **meta_keys; /* n_meta "__metadata__" entries             */
    char **meta_vals;
    size_t n_meta;
} st_header;

/* Parses the header of a safetensors file whose first len bytes (the whole
 * file: the data section is what follows the header) are at buf. Returns 0
 * and fills *out (free with st_header_free), or -1 with a message naming the
 * tensor and *out zeroed. */
int st_parse_header(const uint8_t *buf, size_t len, st_header *out, char *err, size_t errlen);
void st_header_free(st_header *h);

/* Looks a tensor up by exact name; NULL if absent. */
const st_tensor *st_header_find(const st_header *h, const char *name);

/* Metadata value for key, or NULL. */
const char *st_header_meta(const st_header *h, const char *key);

typedef struct st_file {
    char *path;
    const uint8_t *map; /* whole file, read-only; NULL for empty files  */
    size_t size;
    st_header hdr;
} st_file;

/* Maps path read-only and parses its header. Returns 0, or -1 with a
 * message starting "path: " (file missing, too short, truncated, bad
 * header...). On failure *f is zeroed; st_close on it is a no-op. */
int st_open(st_file *f, const char *path, char *err, size_t errlen);
void st_close(st_file *f);

/* Tensor by name (NULL if absent) and a pointer to its bytes. */
const st_tensor *st_find(const st_file *f, const char *name);
const void *st_data(const st_file *f, const st_tensor *t);

/* ---- writer ---- */

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
} st_desc;

typedef struct st_writer st_writer;

/* Creates path and writes the header for the n tensors in desc (data laid
 * out in that order, without gaps; the header is padded with spaces so the
 * data section starts 8-byte aligned, as Hugging Face writes it). meta is
 * n_meta key/value pairs for "__metadata__" (may be 0). Returns NULL with a
 * message naming the file on failure. */
st_writer *st_writer_open(const char *path, const st_desc *desc, size_t n,
                          const char *const *meta_kv, size_t n_meta, char *err, size_t errlen);
/* Appends bytes of tensor data (any chunking). Returns 0 or -1 (write error,
 * or more bytes than the header declared). */
int st_writer_write(st_writer *w, const void *data, size_t bytes, char *err, size_t errlen);
/* Bytes of tensor i as declared (numel * dtype size). */
uint64_t st_desc_bytes(const st_desc *d);
/* Flushes and closes. Returns 0, or -1 if a write failed or the data written
 * does not match the header. Always frees w. */
int st_writer_close(st_writer *w, char *err, size_t errlen);
/* Closes and deletes the partial file (for error paths). w may be NULL. */
void st_writer_abort(st_writer *w);

#endif
