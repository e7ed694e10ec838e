/* tokenizer.c - Qwen2/Qwen3 byte-level BPE from a Hugging Face tokenizer.json.
 *
 * Reproduces HF `tokenizers` (0.23.2, the reference of record) id for id;
 * docs/tokenizer.md has the long form, the tests and the measurements.
 *
 *   text --UTF-8 check--> added-token split (raw bytes, leftmost-longest)
 *        --per segment--> NFC (utf8proc, only around code points that are
 *        not NFC boundaries) --> pre-tokenizer (a hand-written matcher that
 *        is exactly the Split regex below, with HF's Oniguruma semantics)
 *        --per piece--> BPE over integer ids --> ids --> post-processor.
 *
 * Pre-tokenizer. tokenizer.json's Split regex
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * matches at every position (every code point is L, N, White_Space or
 * "other", and each class starts some branch), so the input is cut into
 * consecutive pieces; pre_match() returns where the piece starting at a
 * position ends, branch by branch in the regex's leftmost-first order.
 * \s is the Unicode White_Space property (U+0085 included, U+FEFF not), as
 * in Oniguruma (HF's regex engine) and Rust's regex crate; (?i) folds 's'
 * to {s, S, U+017F LONG S}, the only non-ASCII case fold of the letters
 * s t r e v m l d. L/N are utf8proc's general categories (Unicode 15.0)
 * plus HF_LETTERS/HF_NUMBERS (Unicode 15.1-16.0, as HF's Oniguruma).
 *
 * NFC. HF normalizes with Unicode 9.0 tables; utf8proc has 15.0. Code
 * points in HF_NFC_INERT (marks and composites added after 9.0) are left
 * as they are and cut normalization spans, which makes the two agree.
 *
 * ByteLevel + BPE. The GPT-2 byte-to-unicode map is a bijection, so the
 * vocabulary is stored in raw bytes (each token string decoded back through
 * the map) and a piece's initial symbols are the ids of its single bytes.
 * Merges live in an 8-byte-slot (id_a, id_b) -> rank table (merged id by
 * rank), single-byte pairs in a dense 256x256 table. A piece is merged
 * lowest rank first, leftmost on ties (HF's Word::merge_all order): up to
 * 48 bytes by a linear scan, longer ones with a binary heap over a linked
 * list, from 2048 bytes with per-rank buckets (O(n) when the merges are
 * "monotone", checked at load: 10 MB of one letter is one piece).
 *
 * Caches, both lock-free and shared by all threads: (1) per vocabulary id,
 * whether a piece equal to that token BPE-encodes to that one token (an
 * atomic byte, relaxed: every thread computes the same value); (2) a word
 * cache of BPE results for pieces of 4..28 bytes (a seqlock per entry, see
 * wc_get). Everything else is per call, so tok_encode may run concurrently.
 */
#include "tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdatomic.h>
#include <utf8proc.h>

#include "common.h"

/* The only Split pattern this matcher implements (Qwen2/Qwen2.5/Qwen3). */
static const char QWEN_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Per-code-point class bits. */
enum {
    CL_L = 1,       /* \p{L} */
    CL_N = 2,       /* \p{N} */
    CL_WS = 4,      /* \s = White_Space */
    CL_CRLF = 8,    /* \r or \n */
    CL_UNSAFE = 16, /* NFC may change text around it (not a composition boundary) */
    CL_INERT = 32   /* HF's NFC (Unicode 9.0 data) does not know it: left as is */
};

/* Where HF tokenizers' Unicode data is not utf8proc's (docs/tokenizer.md,
 * "Unicode versions"). Measured on HF tokenizers 0.23.2 itself and written
 * by tests/tokenizer/gen_unicode_tables.mjs (also unicode_tables.json):
 *   HF_LETTERS, HF_NUMBERS: \p{L} / \p{N} for HF's regex (Oniguruma,
 *     Unicode 16.0) among code points new since Unicode 14.0; applied where
 *     utf8proc 2.8 (Unicode 15.0) has them unassigned.
 *   HF_NFC_INERT: code points HF's NFC (unicode-normalization-alignments,
 *     Unicode 9.0 tables) does not know, so it neither decomposes, reorders
 *     nor composes them: marks and composites added after Unicode 9.0.
 * ---- generated: begin ---- */
static const uint32_t HF_LETTERS[][2] = {
    {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CD},   {0xA7DA, 0xA7DC},   {0x105C0, 0x105F3},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x1123F, 0x11240},
    {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5},
    {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0},
    {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x1342F, 0x1342F},
    {0x13441, 0x13446}, {0x13460, 0x143FA}, {0x16100, 0x1611D}, {0x16D40, 0x16D6C},
    {0x18CFF, 0x18CFF}, {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1DF25, 0x1DF2A},
    {0x1E030, 0x1E06D}, {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0},
    {0x2B739, 0x2B739}, {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF},
};
static const uint32_t HF_NUMBERS[][2] = {
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x11F50, 0x11F59},
    {0x16130, 0x16139}, {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3},
    {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA},
};
static const uint32_t HF_NFC_INERT[][2] = {
    {0x7FD, 0x7FD},     {0x897, 0x89F},     {0x8CA, 0x8D3},     {0x9FE, 0x9FE},
    {0xC3C, 0xC3C},     {0xD3B, 0xD3C},     {0xEBA, 0xEBA},     {0x1715, 0x1715},
    {0x1ABF, 0x1ADD},   {0x1AE0, 0x1AEB},   {0x1DF6, 0x1DFA},   {0xA82C, 0xA82C},
    {0x105C9, 0x105C9}, {0x105D2, 0x105D2}, {0x105DA, 0x105DA}, {0x105E4, 0x105E4},
    {0x10D24, 0x10D27}, {0x10D69, 0x10D6D}, {0x10EAB, 0x10EAC}, {0x10EFA, 0x10EFB},
    {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070},
    {0x1133B, 0x1133B}, {0x11382, 0x11385}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E},
    {0x11390, 0x11391}, {0x113B8, 0x113B8}, {0x113BB, 0x113BB}, {0x113C2, 0x113C2},
    {0x113C5, 0x113C5}, {0x113C7, 0x113C9}, {0x113CE, 0x113D0}, {0x1145E, 0x1145E},
    {0x11839, 0x1183A}, {0x11930, 0x11930}, {0x11935, 0x11935}, {0x11938, 0x11938},
    {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34},
    {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45},
    {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x1611E, 0x16129}, {0x1612F, 0x1612F},
    {0x16D63, 0x16D63}, {0x16D67, 0x16D6A}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F},
    {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF},
    {0x1E5EE, 0x1E5EF}, {0x1E6E3, 0x1E6E3}, {0x1E6E6, 0x1E6E6}, {0x1E6EE, 0x1E6EF},
    {0x1E6F5, 0x1E6F5},
};
/* ---- generated: end ---- */

#define NO_RANK      UINT32_MAX
#define SMALL_PIECE  48   /* pieces up to this many bytes use the O(n^2) scan */
#define BUCKET_PIECE 2048 /* pieces from this many bytes use rank buckets (if monotone) */

/* The merge table packs a pair and its rank into 8 bytes so that it stays
 * small (4 MB for Qwen) and a probe touches one cache line:
 *   slot = ((id_a << 20 | id_b) + 1) << 24 | rank,  0 = empty;
 * hence ids < 2^20 and ranks < 2^24, checked at load. The merged token of a
 * rank is merged_id[rank]. */
#define ID_BITS   20
#define RANK_BITS 24

typedef struct {
    uint32_t rank; /* NO_RANK: no merge for this pair */
    int32_t new_id;
} merge_t;

typedef struct {
    char *s; /* content bytes (NUL-terminated copy) */
    size_t len;
    int32_t id;
} added_token;

struct tok_tokenizer {
    /* Base vocabulary, by id, in raw bytes. */
    int32_t n_ids;    /* 1 + highest base vocab id */
    char *bytes;      /* arena */
    uint32_t *off;    /* (n_ids + 1): token id's bytes are bytes[off[id] .. off[id+1]) */
    uint8_t *present; /* (n_ids): 1 if id is in model.vocab */
    size_t max_tok_len;
    struct vslot {
        int32_t id;   /* -1: empty */
        uint32_t tag; /* high half of the hash, checked before the bytes */
    } * vhash;        /* bytes -> id, open addressing */
    uint32_t vhash_mask;
    int32_t byte_id[256]; /* id of each single byte's token */

    uint64_t *mh; /* pair -> rank (see ID_BITS) */
    uint32_t mh_mask;
    int32_t *merged_id;  /* rank -> id of the merged token */
    uint32_t *byte_pair; /* 256 x 256: rank of the merge of two single bytes */
    uint32_t n_ranks;    /* number of merges */
    size_t small_max;    /* pieces up to this many bytes: bpe_small (<= SMALL_PIECE) */
    size_t bucket_min;   /* pieces from this many bytes: bpe_bucket (if monotone) */
    bool monotone;       /* a merge's inputs are made only by lower-ranked merges */
    bool ignore_merges;
    _Atomic uint8_t *self; /* (n_ids): 0 unknown, 1 BPE(token) == [token], 2 not */
    struct wc_entry *wc;   /* word cache (see wc_get), WC_SIZE entries */

    added_token *added; /* sorted by first byte, then longest first */
    int n_added;
    int first_start[257]; /* added[first_start[b] .. first_start[b+1]) start with byte b */
    int32_t vocab_rows;   /* added tokens with id >= vocab_rows are not matched (<= 0: all) */

    bool nfc;
    uint16_t stage1[0x1100]; /* code point >> 8 -> block */
    uint8_t *blocks;         /* blocks of 256 class bytes */

    int32_t eos;
    int32_t *prefix; /* ids before the content (template) */
    int n_prefix;
    int32_t *suffix; /* ids after the content; always ends with eos */
    int n_suffix;
};

/* ---------------------------------------------------------------- helpers */

static inline uint8_t cp_class(const tok_tokenizer *t, uint32_t cp)
{
    return t->blocks[((size_t)t->stage1[cp >> 8] << 8) | (cp & 255)];
}

/* Decodes one code point of valid UTF-8 at s (n > 0 bytes left). */
static inline uint32_t utf8_dec(const uint8_t *s, int *adv)
{
    uint8_t b = s[0];
    if (b < 0x80) {
        *adv = 1;
        return b;
    }
    if (b < 0xE0) {
        *adv = 2;
        return ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (b < 0xF0) {
        *adv = 3;
        return ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *adv = 4;
    return ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* Validates UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
 * Returns 0, or -1 with *bad = offset of the offending sequence's first byte
 * and *why a description. */
static int utf8_validate(const uint8_t *s, size_t n, size_t *bad, const char **why)
{
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b < 0xC0) {
            *bad = i, *why = "unexpected continuation byte";
            return -1;
        } else if (b < 0xC2) {
            *bad = i, *why = "overlong encoding";
            return -1;
        } else if (b < 0xE0) {
            need = 1;
        } else if (b < 0xF0) {
            need = 2;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b < 0xF5) {
            need = 3;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else if (b < 0xF8) {
            *bad = i, *why = "code point above U+10FFFF";
            return -1;
        } else {
            *bad = i, *why = "byte never valid in UTF-8";
            return -1;
        }
        if (i + 1 >= n) {
            *bad = i, *why = "truncated sequence at end of input";
            return -1;
        }
        uint8_t c = s[i + 1];
        if (c < lo || c > hi) {
            *bad = i;
            if (c < 0x80 || c > 0xBF)
                *why = "truncated sequence (missing continuation byte)";
            else if (b == 0xE0 || b == 0xF0)
                *why = "overlong encoding";
            else if (b == 0xED)
                *why = "UTF-16 surrogate (U+D800..U+DFFF) encoded in UTF-8";
            else
                *why = "code point above U+10FFFF";
            return -1;
        }
        for (size_t k = 2; k <= need; k++) {
            if (i + k >= n) {
                *bad = i, *why = "truncated sequence at end of input";
                return -1;
            }
            if ((s[i + k] & 0xC0) != 0x80) {
                *bad = i, *why = "truncated sequence (missing continuation byte)";
                return -1;
            }
        }
        i += need + 1;
    }
    return 0;
}

static inline uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
        p += 8, n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
    }
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 32);
}

static inline uint64_t hash_pair(uint64_t key)
{
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

/* Id of a base-vocabulary token with these bytes (hv = hash_bytes(p, n)),
 * or -1. */
static int32_t vocab_find_h(const tok_tokenizer *t, const uint8_t *p, size_t n, uint64_t hv)
{
    if (n == 0 || n > t->max_tok_len) return -1;
    uint32_t tag = (uint32_t)(hv >> 32);
    for (uint32_t h = (uint32_t)hv & t->vhash_mask;; h = (h + 1) & t->vhash_mask) {
        int32_t id = t->vhash[h].id;
        if (id < 0) return -1;
        if (t->vhash[h].tag == tag && t->off[id + 1] - t->off[id] == n &&
            !memcmp(t->bytes + t->off[id], p, n))
            return id;
    }
}

static int32_t vocab_find(const tok_tokenizer *t, const uint8_t *p, size_t n)
{
    return vocab_find_h(t, p, n, hash_bytes(p, n));
}

static inline uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << ID_BITS | (uint32_t)b) + 1;
}

static inline merge_t merge_find(const tok_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = pair_key(a, b);
    for (uint32_t h = (uint32_t)hash_pair(key) & t->mh_mask;; h = (h + 1) & t->mh_mask) {
        uint64_t v = t->mh[h];
        if (v >> RANK_BITS == key) {
            uint32_t r = (uint32_t)(v & ((1u << RANK_BITS) - 1));
            return (merge_t){r, t->merged_id[r]};
        }
        if (v == 0) return (merge_t){NO_RANK, -1};
    }
}

/* Merge of the single-byte tokens of bytes x and y (a 256 KB table). */
static inline merge_t byte_merge(const tok_tokenizer *t, uint8_t x, uint8_t y)
{
    uint32_t r = t->byte_pair[(unsigned)x << 8 | y];
    return (merge_t){r, r == NO_RANK ? -1 : t->merged_id[r]};
}

/* ------------------------------------------------------------ output ids */

typedef struct {
    int32_t *v;
    size_t n, cap;
    size_t limit; /* stop once n reaches limit (content budget), SIZE_MAX: none */
    bool oom;
} idvec;

static inline bool idvec_push(idvec *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        int32_t *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            o->oom = true;
            return false;
        }
        o->v = v, o->cap = cap;
    }
    o->v[o->n++] = id;
    return true;
}

/* ------------------------------------------------------------------- BPE */

/* Linear-scan BPE for short pieces: at each step merge the adjacent pair of
 * lowest rank, leftmost on ties. Returns the number of ids in out[]. */
static int bpe_small(const tok_tokenizer *t, const uint8_t *p, int m, int32_t *out)
{
    int32_t ids[SMALL_PIECE];
    uint32_t rank[SMALL_PIECE];
    int32_t nid[SMALL_PIECE];
    for (int k = 0; k < m; k++)
        ids[k] = t->byte_id[p[k]];
    int n = m;
    for (int k = 0; k + 1 < n; k++) {
        merge_t mg = byte_merge(t, p[k], p[k + 1]);
        rank[k] = mg.rank;
        nid[k] = mg.new_id;
    }
    while (n > 1) {
        int best = 0;
        for (int k = 1; k + 1 < n; k++)
            if (rank[k] < rank[best]) best = k;
        if (rank[best] == NO_RANK) break;
        ids[best] = nid[best];
        for (int k = best + 1; k + 1 < n; k++)
            ids[k] = ids[k + 1];
        for (int k = best + 1; k + 2 < n; k++)
            rank[k] = rank[k + 1], nid[k] = nid[k + 1];
        n--;
        if (best + 1 < n) {
            merge_t mg = merge_find(t, ids[best], ids[best + 1]);
            rank[best] = mg.rank;
            nid[best] = mg.new_id;
        }
        if (best > 0) {
            merge_t mg = merge_find(t, ids[best - 1], ids[best]);
            rank[best - 1] = mg.rank;
            nid[best - 1] = mg.new_id;
        }
    }
    memcpy(out, ids, (size_t)n * sizeof *ids);
    return n;
}

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} heap_ent;

static inline bool heap_less(const heap_ent *a, const heap_ent *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(heap_ent *h, size_t *n, heap_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, size_t *n)
{
    heap_ent top = h[0], last = h[--*n];
    size_t i = 0, cnt = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= cnt) break;
        if (c + 1 < cnt && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (cnt) h[i] = last;
    return top;
}

/* The initial symbols of a piece for the linked-list BPE paths: one id per
 * byte, linked to its neighbours. */
static void init_symbols(const tok_tokenizer *t, const uint8_t *p, size_t m, int32_t *id,
                         int32_t *prev, int32_t *next)
{
    for (size_t k = 0; k < m; k++) {
        id[k] = t->byte_id[p[k]];
        prev[k] = (int32_t)k - 1;
        next[k] = k + 1 < m ? (int32_t)k + 1 : -1;
    }
}

/* Heap + linked-list BPE for long pieces (HF Word::merge_all). Appends the
 * ids to o. Returns 0, or -1 when out of memory. */
static int bpe_large(const tok_tokenizer *t, const uint8_t *p, size_t m, idvec *o)
{
    if (m > (size_t)INT32_MAX - 1) return -1;
    int32_t *id = malloc(m * sizeof *id);
    int32_t *prev = malloc(m * sizeof *prev);
    int32_t *next = malloc(m * sizeof *next);
    size_t hcap = m + 16, hn = 0;
    heap_ent *h = malloc(hcap * sizeof *h);
    int rc = -1;
    if (!id || !prev || !next || !h) goto out;
    init_symbols(t, p, m, id, prev, next);
    for (size_t k = 0; k + 1 < m; k++) {
        merge_t mg = byte_merge(t, p[k], p[k + 1]);
        if (mg.rank != NO_RANK) heap_push(h, &hn, (heap_ent){mg.rank, (uint32_t)k, mg.new_id});
    }
    while (hn) {
        heap_ent top = heap_pop(h, &hn);
        size_t pos = top.pos;
        if (id[pos] < 0 || next[pos] < 0) continue; /* merged away / last symbol */
        size_t nx = (size_t)next[pos];
        merge_t mg = merge_find(t, id[pos], id[nx]);
        if (mg.rank == NO_RANK || mg.new_id != top.new_id) continue; /* stale entry */
        id[pos] = top.new_id;
        id[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = (int32_t)pos;
        if (hn + 2 > hcap) {
            size_t nc = hcap * 2;
            heap_ent *nh = realloc(h, nc * sizeof *nh);
            if (!nh) goto out;
            h = nh, hcap = nc;
        }
        if (prev[pos] >= 0) {
            merge_t a = merge_find(t, id[prev[pos]], id[pos]);
            if (a.rank != NO_RANK)
                heap_push(h, &hn, (heap_ent){a.rank, (uint32_t)prev[pos], a.new_id});
        }
        if (next[pos] >= 0) {
            merge_t b = merge_find(t, id[pos], id[next[pos]]);
            if (b.rank != NO_RANK) heap_push(h, &hn, (heap_ent){b.rank, (uint32_t)pos, b.new_id});
        }
    }
    for (int32_t k = 0; k >= 0; k = next[k])
        if (!idvec_push(o, id[k])) goto out;
    rc = 0;
out:
    free(id), free(prev), free(next), free(h);
    return rc;
}

/* Rank-bucket BPE for very long pieces, exact when the merges are
 * "monotone" (checked at load): a merge's inputs are produced only by
 * merges of lower rank, so a merge at rank r only creates pairs of rank
 * > r and the ranks applied never decrease. Then all pairs of the lowest
 * pending rank are known before that rank is processed, and processing them
 * left to right is the heap order (rank, position) without a heap over all
 * positions: positions wait in per-rank lists, a small heap holds the
 * distinct pending ranks. Appends to idvec o. Returns 0, or -1 when out of
 * memory. */
typedef struct {
    uint32_t pos, next; /* next: node index + 1, 0 = end */
} rank_node;

typedef struct {
    uint32_t key;        /* rank + 1, 0 = empty slot */
    uint32_t head, tail; /* node index + 1, 0 = empty list */
} rank_slot;

typedef struct {
    rank_slot *slots; /* rank -> its list; a rank's slot is never reused */
    uint32_t mask;
    rank_node *pool;
    uint32_t free_list; /* node index + 1 */
    size_t used, cap;
    uint32_t *rheap; /* pending ranks */
    size_t rn, rcap;
} rank_lists;

static rank_slot *rl_slot(rank_lists *L, uint32_t rank)
{
    uint32_t key = rank + 1;
    for (uint32_t h = (uint32_t)hash_pair(key) & L->mask;; h = (h + 1) & L->mask) {
        rank_slot *s = &L->slots[h];
        if (s->key == key) return s;
        if (s->key == 0) {
            s->key = key;
            return s;
        }
    }
}

static int rl_append(rank_lists *L, uint32_t rank, uint32_t pos)
{
    uint32_t node;
    if (L->free_list) {
        node = L->free_list;
        L->free_list = L->pool[node - 1].next;
    } else {
        if (L->used == L->cap) {
            size_t nc = L->cap * 2;
            rank_node *np = realloc(L->pool, nc * sizeof *np);
            if (!np) return -1;
            L->pool = np, L->cap = nc;
        }
        node = (uint32_t)++L->used;
    }
    L->pool[node - 1] = (rank_node){pos, 0};
    rank_slot *s = rl_slot(L, rank);
    if (!s->head) {
        s->head = s->tail = node;
        if (L->rn == L->rcap) {
            size_t nc = L->rcap * 2;
            uint32_t *nh = realloc(L->rheap, nc * sizeof *nh);
            if (!nh) return -1;
            L->rheap = nh, L->rcap = nc;
        }
        size_t i = L->rn++;
        while (i > 0 && L->rheap[(i - 1) / 2] > rank) {
            L->rheap[i] = L->rheap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        L->rheap[i] = rank;
    } else {
        L->pool[s->tail - 1].next = node;
        s->tail = node;
    }
    return 0;
}

static uint32_t rl_pop_rank(rank_lists *L)
{
    uint32_t top = L->rheap[0], last = L->rheap[--L->rn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= L->rn) break;
        if (c + 1 < L->rn && L->rheap[c + 1] < L->rheap[c]) c++;
        if (L->rheap[c] >= last) break;
        L->rheap[i] = L->rheap[c];
        i = c;
    }
    if (L->rn) L->rheap[i] = last;
    return top;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int bpe_bucket(const tok_tokenizer *t, const uint8_t *p, size_t m, idvec *o)
{
    if (m > (size_t)INT32_MAX - 1) return -1;
    int rc = -1;
    int32_t *id = malloc(m * sizeof *id);
    int32_t *prev = malloc(m * sizeof *prev);
    int32_t *next = malloc(m * sizeof *next);
    uint32_t *batch = malloc(m * sizeof *batch);
    rank_lists L = {0};
    /* Distinct ranks ever queued <= min(appends, merges); keep load <= 1/2. */
    size_t nslots = 16, distinct = 3 * m < t->n_ranks ? 3 * m : t->n_ranks;
    while (nslots < 2 * distinct + 2)
        nslots <<= 1;
    L.slots = calloc(nslots, sizeof *L.slots);
    L.mask = (uint32_t)(nslots - 1);
    L.cap = m + 16;
    L.pool = malloc(L.cap * sizeof *L.pool);
    L.rcap = 64;
    L.rheap = malloc(L.rcap * sizeof *L.rheap);
    if (!id || !prev || !next || !batch || !L.slots || !L.pool || !L.rheap) goto out;
    init_symbols(t, p, m, id, prev, next);
    for (size_t k = 0; k + 1 < m; k++) {
        merge_t mg = byte_merge(t, p[k], p[k + 1]);
        if (mg.rank != NO_RANK && rl_append(&L, mg.rank, (uint32_t)k) != 0) goto out;
    }
    while (L.rn) {
        uint32_t r = rl_pop_rank(&L);
        size_t nb = 0;
        bool sorted = true;
        rank_slot *rs = rl_slot(&L, r);
        for (uint32_t nd = rs->head; nd;) {
            uint32_t nx = L.pool[nd - 1].next;
            batch[nb] = L.pool[nd - 1].pos;
            if (nb && batch[nb] < batch[nb - 1]) sorted = false;
            nb++;
            L.pool[nd - 1].next = L.free_list; /* recycle the node */
            L.free_list = nd;
            nd = nx;
        }
        rs->head = rs->tail = 0;
        if (!sorted) qsort(batch, nb, sizeof *batch, cmp_u32);
        for (size_t b = 0; b < nb; b++) {
            size_t pos = batch[b];
            if (id[pos] < 0 || next[pos] < 0) continue;
            size_t nx = (size_t)next[pos];
            merge_t mg = merge_find(t, id[pos], id[nx]);
            if (mg.rank != r) continue; /* the pair changed since it was queued */
            id[pos] = mg.new_id;
            id[nx] = -1;
            next[pos] = next[nx];
            if (next[nx] >= 0) prev[next[nx]] = (int32_t)pos;
            if (prev[pos] >= 0) {
                merge_t a = merge_find(t, id[prev[pos]], id[pos]);
                if (a.rank != NO_RANK) {
                    EQ_ASSERT(a.rank > r);
                    if (rl_append(&L, a.rank, (uint32_t)prev[pos]) != 0) goto out;
                }
            }
            if (next[pos] >= 0) {
                merge_t c = merge_find(t, id[pos], id[next[pos]]);
                if (c.rank != NO_RANK) {
                    EQ_ASSERT(c.rank > r);
                    if (rl_append(&L, c.rank, (uint32_t)pos) != 0) goto out;
                }
            }
        }
    }
    for (int32_t k = 0; k >= 0; k = next[k])
        if (!idvec_push(o, id[k])) goto out;
    rc = 0;
out:
    free(id), free(prev), free(next), free(batch);
    free(L.slots), free(L.pool), free(L.rheap);
    return rc;
}

/* ------------------------------------------------------------ word cache
 *
 * BPE results of short pieces that are not a single vocabulary token, in a
 * shared direct-mapped table read without locks: each 64-byte entry is a
 * seqlock made of C11 atomics only (no plain data is shared, so there is no
 * data race): a writer makes seq odd with a CAS (giving up if another
 * writer holds the entry), stores the payload with release stores, and
 * makes seq even again; a reader copies the payload with acquire loads
 * between two reads of seq and keeps the copy only if seq was even and
 * unchanged (plain moves on x86). A miss or a lost race just means
 * running BPE; the cached value is the deterministic BPE result, so what a
 * thread reads is either absent or right. */
#define WC_BITS      16
#define WC_SIZE      (1u << WC_BITS)
#define WC_MAX_BYTES 28
#define WC_MAX_IDS   7

struct wc_entry {
    _Atomic uint32_t seq;
    _Atomic uint32_t meta; /* len | n_ids << 8 | (hash >> 48) << 16; 0 = empty */
    _Atomic uint32_t bytes[WC_MAX_BYTES / 4];
    _Atomic uint32_t ids[WC_MAX_IDS];
};

static inline uint32_t wc_meta(size_t len, int nids, uint64_t hv)
{
    return (uint32_t)len | (uint32_t)nids << 8 | (uint32_t)(hv >> 48) << 16;
}

/* Copies the cached ids of piece p (m <= WC_MAX_BYTES) into ids; returns
 * their count, or 0 on a miss. */
static int wc_get(const tok_tokenizer *t, const uint8_t *p, size_t m, uint64_t hv, int32_t *ids)
{
    struct wc_entry *e = &t->wc[(hv >> 20) & (WC_SIZE - 1)];
    uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (s1 & 1) return 0;
    uint32_t meta = atomic_load_explicit(&e->meta, memory_order_acquire);
    if ((meta & 0xFF) != m || meta >> 16 != (uint32_t)(hv >> 48)) return 0;
    int n = (int)((meta >> 8) & 0xFF);
    uint32_t w[WC_MAX_BYTES / 4];
    size_t nw = (m + 3) / 4;
    /* Acquire loads keep the second read of seq after the payload reads. */
    for (size_t k = 0; k < nw; k++)
        w[k] = atomic_load_explicit(&e->bytes[k], memory_order_acquire);
    for (int k = 0; k < n; k++)
        ids[k] = (int32_t)atomic_load_explicit(&e->ids[k], memory_order_acquire);
    if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1) return 0;
    uint8_t b[WC_MAX_BYTES] = {0};
    memcpy(b, p, m);
    for (size_t k = 0; k < nw; k++) {
        uint32_t x;
        memcpy(&x, b + 4 * k, 4);
        if (x != w[k]) return 0;
    }
    return n;
}

static void wc_put(const tok_tokenizer *t, const uint8_t *p, size_t m, uint64_t hv,
                   const int32_t *ids, int n)
{
    struct wc_entry *e = &t->wc[(hv >> 20) & (WC_SIZE - 1)];
    uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(
                       &e->seq, &s, s + 1, memory_order_acquire, memory_order_relaxed))
        return; /* another writer holds it: skip */
    /* Release stores keep the odd seq before the payload writes. */
    uint8_t b[WC_MAX_BYTES] = {0};
    memcpy(b, p, m);
    for (size_t k = 0; k < (m + 3) / 4; k++) {
        uint32_t x;
        memcpy(&x, b + 4 * k, 4);
        atomic_store_explicit(&e->bytes[k], x, memory_order_release);
    }
    for (int k = 0; k < n; k++)
        atomic_store_explicit(&e->ids[k], (uint32_t)ids[k], memory_order_release);
    atomic_store_explicit(&e->meta, wc_meta(m, n, hv), memory_order_release);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

/* Encodes one pre-tokenized piece (raw bytes) and appends its ids. */
static int encode_piece(const tok_tokenizer *t, const uint8_t *p, size_t m, idvec *o)
{
    if (m == 1) return idvec_push(o, t->byte_id[p[0]]) ? 0 : -1;
    /* Caches from 4 bytes on (shorter pieces are cheaper to merge than to
     * look up): the word cache (one cache line), then the whole piece as one
     * vocabulary token with its memoized BPE outcome. */
    uint64_t hv = 0;
    int32_t whole = -1;
    bool cacheable = m >= 4 && m <= WC_MAX_BYTES && m <= t->small_max && !t->ignore_merges;
    if (m >= 4 || t->ignore_merges) hv = hash_bytes(p, m);
    if (cacheable) {
        int32_t ids[WC_MAX_IDS];
        int n = wc_get(t, p, m, hv, ids);
        for (int k = 0; k < n; k++)
            if (!idvec_push(o, ids[k])) return -1;
        if (n) return 0;
    }
    if (m >= 4 || t->ignore_merges) whole = vocab_find_h(t, p, m, hv);
    if (whole >= 0) {
        if (t->ignore_merges) return idvec_push(o, whole) ? 0 : -1;
        uint8_t st = atomic_load_explicit(&t->self[whole], memory_order_relaxed);
        if (st == 1) {
            if (cacheable) wc_put(t, p, m, hv, &whole, 1);
            return idvec_push(o, whole) ? 0 : -1;
        }
    }
    if (m <= t->small_max) {
        int32_t ids[SMALL_PIECE];
        int n = bpe_small(t, p, (int)m, ids);
        if (whole >= 0)
            atomic_store_explicit(&t->self[whole], (uint8_t)(n == 1 && ids[0] == whole ? 1 : 2),
                                  memory_order_relaxed);
        if (cacheable && n <= WC_MAX_IDS) wc_put(t, p, m, hv, ids, n);
        for (int k = 0; k < n; k++)
            if (!idvec_push(o, ids[k])) return -1;
        return 0;
    }
    if (m >= t->bucket_min && t->monotone) return bpe_bucket(t, p, m, o);
    return bpe_large(t, p, m, o);
}

/* ---------------------------------------------------------- pre-tokenizer */

static inline bool is_other(uint8_t c)
{
    return !(c & (CL_L | CL_N | CL_WS));
}

/* End of the regex match that starts at s[i] (i < n). */
static size_t pre_match(const tok_tokenizer *t, const uint8_t *s, size_t n, size_t i)
{
    int a0, a1;
    uint32_t c0 = utf8_dec(s + i, &a0);
    uint8_t k0 = cp_class(t, c0);
    size_t j = i + (size_t)a0;

    /* 1. (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c0 == '\'' && j < n) {
        uint32_t c1 = utf8_dec(s + j, &a1);
        size_t e = j + (size_t)a1;
        switch (c1) {
        case 's':
        case 'S':
        case 0x17F: /* LATIN SMALL LETTER LONG S folds to s */
        case 't':
        case 'T':
        case 'm':
        case 'M':
        case 'd':
        case 'D':
            return e;
        case 'r':
        case 'R':
        case 'v':
        case 'V':
            if (e < n && (s[e] == 'e' || s[e] == 'E')) return e + 1;
            break;
        case 'l':
        case 'L':
            if (e < n && (s[e] == 'l' || s[e] == 'L')) return e + 1;
            break;
        }
    }
    /* 2. [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 & CL_L) {
        while (j < n) {
            uint32_t c = utf8_dec(s + j, &a1);
            if (!(cp_class(t, c) & CL_L)) break;
            j += (size_t)a1;
        }
        return j;
    }
    if (!(k0 & (CL_N | CL_CRLF)) && j < n) {
        uint32_t c = utf8_dec(s + j, &a1);
        if (cp_class(t, c) & CL_L) {
            j += (size_t)a1;
            while (j < n) {
                c = utf8_dec(s + j, &a1);
                if (!(cp_class(t, c) & CL_L)) break;
                j += (size_t)a1;
            }
            return j;
        }
    }
    /* 3. \p{N} */
    if (k0 & CL_N) return j;
    /* 4.  ?[^\s\p{L}\p{N}]+[\r\n]* */
    {
        size_t k = c0 == ' ' ? j : i;
        size_t e = k;
        while (e < n) {
            uint32_t c = utf8_dec(s + e, &a1);
            if (!is_other(cp_class(t, c))) break;
            e += (size_t)a1;
        }
        if (e > k) {
            while (e < n && (s[e] == '\r' || s[e] == '\n'))
                e++;
            return e;
        }
    }
    /* Here c0 is White_Space. 5. \s*[\r\n]+  6. \s+(?!\S)  7. \s+ */
    size_t last_nl = SIZE_MAX, last_start = i, e = i;
    while (e < n) {
        uint32_t c = utf8_dec(s + e, &a1);
        uint8_t k = cp_class(t, c);
        if (!(k & CL_WS)) break;
        if (k & CL_CRLF) last_nl = e;
        last_start = e;
        e += (size_t)a1;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1;
    if (e == n || last_start == i) return e;
    return last_start;
}

/* --------------------------------------------------------------------- NFC */

/* Scans s[i..n) for the next code point that is not an NFC boundary and
 * returns its offset (n if none). *st is kept at the earliest offset a
 * normalization span may start from: the last boundary code point before
 * the returned one (it may compose with what follows), or just after an
 * inert one (which HF's NFC leaves alone, so no span includes it). */
static size_t nfc_next_unsafe(const tok_tokenizer *t, const uint8_t *s, size_t n, size_t i,
                              size_t *st)
{
    for (;;) {
        while (i < n && s[i] < 0x80)
            *st = i++;
        if (i >= n) return n;
        int a;
        uint8_t k = cp_class(t, utf8_dec(s + i, &a));
        if (k & CL_UNSAFE) return i;
        *st = k & CL_INERT ? i + (size_t)a : i;
        i += (size_t)a;
    }
}

/* NFC of s[0..n) (valid UTF-8) as HF tokenizers computes it. Returns s
 * itself when already normalized (the common case: every code point is an
 * NFC boundary), else a malloc'd buffer in *owned. Returns NULL when out of
 * memory. Only the spans between boundaries that contain a non-boundary
 * code point are run through utf8proc; code points marked inert (see
 * HF_NFC_INERT) end spans and are copied as they are. */
static const uint8_t *nfc_segment(const tok_tokenizer *t, const uint8_t *s, size_t n, size_t *out_n,
                                  uint8_t **owned)
{
    *owned = NULL;
    *out_n = n;
    size_t st = 0;
    size_t i = nfc_next_unsafe(t, s, n, 0, &st);
    if (i >= n) return s;
    size_t cap = n + n / 2 + 64, on = 0, flushed = 0;
    uint8_t *out = malloc(cap);
    if (!out) return NULL;
    while (i < n) {
        /* The span: from st (a boundary) through the non-boundary code
         * points, up to the next boundary or inert code point. */
        size_t span = st, e = i;
        while (e < n) {
            int a;
            uint8_t k = cp_class(t, utf8_dec(s + e, &a));
            if (e > i && (!(k & CL_UNSAFE) || (k & CL_INERT))) break;
            e += (size_t)a;
        }
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t nl = utf8proc_map(s + span, (utf8proc_ssize_t)(e - span), &norm,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nl < 0) {
            free(out);
            return NULL;
        }
        size_t need = on + (span - flushed) + (size_t)nl + (n - e);
        if (need > cap) {
            cap = need + need / 2;
            uint8_t *no = realloc(out, cap);
            if (!no) {
                free(norm), free(out);
                return NULL;
            }
            out = no;
        }
        memcpy(out + on, s + flushed, span - flushed);
        on += span - flushed;
        memcpy(out + on, norm, (size_t)nl);
        on += (size_t)nl;
        free(norm);
        flushed = e;
        st = e;
        i = nfc_next_unsafe(t, s, n, e, &st);
    }
    memcpy(out + on, s + flushed, n - flushed);
    on += n - flushed;
    *owned = out;
    *out_n = on;
    return out;
}

/* ------------------------------------------------------------------ encode */

/* Normalizes, pre-tokenizes and BPE-encodes one segment (text between added
 * tokens). Stops early once the content budget is exceeded. */
static int encode_segment(const tok_tokenizer *t, const uint8_t *s, size_t n, idvec *o)
{
    if (n == 0) return 0;
    uint8_t *owned = NULL;
    size_t nn = n;
    if (t->nfc) {
        s = nfc_segment(t, s, n, &nn, &owned);
        if (!s) return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < nn && o->n <= o->limit;) {
        size_t j = pre_match(t, s, nn, i);
        if (encode_piece(t, s + i, j - i, o) != 0) {
            rc = -1;
            break;
        }
        i = j;
    }
    free(owned);
    return rc;
}

/* Longest enabled added token starting at s[i], or NULL. */
static const added_token *added_at(const tok_tokenizer *t, const uint8_t *s, size_t n, size_t i)
{
    for (int k = t->first_start[s[i]]; k < t->first_start[s[i] + 1]; k++) {
        const added_token *a = &t->added[k];
        if (t->vocab_rows > 0 && a->id >= t->vocab_rows) continue;
        if (a->len <= n - i && !memcmp(s + i, a->s, a->len)) return a;
    }
    return NULL;
}

int tok_encode(const tok_tokenizer *t, const char *text, size_t len, const char *instruction,
               size_t ilen, int max_len, int32_t **out, bool *truncated, char *err, size_t errlen)
{
    *out = NULL;
    if (truncated) *truncated = false;
    if (!text && len) return eq_err(err, errlen, "text is NULL");
    if (!text) text = "";
    size_t bad;
    const char *why;
    if (utf8_validate((const uint8_t *)text, len, &bad, &why) != 0)
        return eq_err(err, errlen, "invalid UTF-8 in text at byte offset %zu (byte 0x%02X): %s",
                      bad, (unsigned)(uint8_t)text[bad], why);
    const uint8_t *s = (const uint8_t *)text;
    size_t n = len;
    uint8_t *joined = NULL;
    if (instruction) {
        if (utf8_validate((const uint8_t *)instruction, ilen, &bad, &why) != 0)
            return eq_err(err, errlen,
                          "invalid UTF-8 in instruction at byte offset %zu (byte 0x%02X): %s", bad,
                          (unsigned)(uint8_t)instruction[bad], why);
        static const char pre[] = "Instruct: ", mid[] = "\nQuery:";
        size_t lp = sizeof pre - 1, lm = sizeof mid - 1;
        if (ilen > SIZE_MAX / 2 || len > SIZE_MAX / 2 - 32)
            return eq_err(err, errlen, "input too large");
        joined = malloc(lp + ilen + lm + len + 1);
        if (!joined) return eq_err(err, errlen, "out of memory");
        memcpy(joined, pre, lp);
        memcpy(joined + lp, instruction, ilen);
        memcpy(joined + lp + ilen, mid, lm);
        memcpy(joined + lp + ilen + lm, text, len);
        s = joined;
        n = lp + ilen + lm + len;
    }

    idvec o = {0};
    o.limit = SIZE_MAX;
    if (max_len > 0) {
        long budget = (long)max_len - t->n_prefix - t->n_suffix;
        o.limit = budget > 0 ? (size_t)budget : 0;
    }
    for (int k = 0; k < t->n_prefix; k++)
        idvec_push(&o, t->prefix[k]);
    if (o.limit != SIZE_MAX) o.limit += (size_t)t->n_prefix;

    int rc = 0;
    size_t seg = 0, i = 0;
    while (i < n && o.n <= o.limit) {
        const added_token *a =
            t->first_start[s[i]] < t->first_start[s[i] + 1] ? added_at(t, s, n, i) : NULL;
        if (!a) {
            i++;
            continue;
        }
        if ((rc = encode_segment(t, s + seg, i - seg, &o)) != 0) break;
        if (o.n > o.limit) break;
        idvec_push(&o, a->id);
        i += a->len;
        seg = i;
    }
    if (rc == 0 && o.n <= o.limit) rc = encode_segment(t, s + seg, n - seg, &o);
    free(joined);
    if (rc != 0 || o.oom) {
        free(o.v);
        return eq_err(err, errlen, "out of memory while encoding %zu bytes", n);
    }
    if (o.n > o.limit) {
        o.n = o.limit;
        if (truncated) *truncated = true;
    }
    if (o.n + (size_t)t->n_suffix > (size_t)INT_MAX) {
        free(o.v);
        return eq_err(err, errlen, "too many tokens (more than %d)", INT_MAX);
    }
    for (int k = 0; k < t->n_suffix; k++)
        idvec_push(&o, t->suffix[k]);
    if (o.oom) {
        free(o.v);
        return eq_err(err, errlen, "out of memory");
    }
    *out = o.v;
    return (int)o.n;
}

/* -------------------------------------------------------------- accessors */

void tok_set_vocab_rows(tok_tokenizer *t, int32_t rows)
{
    t->vocab_rows = rows > 0 ? rows : 0;
}

void tok_set_bpe_paths(tok_tokenizer *t, size_t small_max, size_t bucket_min)
{
    t->small_max = small_max < 1 ? 1 : small_max > SMALL_PIECE ? SMALL_PIECE : small_max;
    t->bucket_min = bucket_min < 2 ? 2 : bucket_min;
}

int32_t tok_eos_id(const tok_tokenizer *t)
{
    return t->eos;
}

const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len)
{
    if (id >= 0 && id < t->n_ids && t->present[id]) {
        *len = t->off[id + 1] - t->off[id];
        return t->bytes + t->off[id];
    }
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].id == id) {
            *len = t->added[k].len;
            return t->added[k].s;
        }
    *len = 0;
    return NULL;
}

void tok_free(tok_tokenizer *t)
{
    if (!t) return;
    free(t->bytes);
    free(t->off);
    free(t->present);
    free(t->vhash);
    free(t->mh);
    free(t->merged_id);
    free(t->byte_pair);
    free((void *)t->self);
    free(t->wc);
    for (int k = 0; k < t->n_added; k++)
        free(t->added[k].s);
    free(t->added);
    free(t->blocks);
    free(t->prefix);
    free(t->suffix);
    free(t);
}

/* ------------------------------------------------------------------- load */

/* GPT-2 bytes_to_unicode: byte -> code point, and its inverse. */
static void byte_level_maps(uint32_t b2u[256], int16_t u2b[324])
{
    for (int c = 0; c < 324; c++)
        u2b[c] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        b2u[b] = keep ? (uint32_t)b : (uint32_t)(256 + extra++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* Decodes a byte-level token string into raw bytes (dst has room for
 * strlen(src) bytes). Returns the length, or -1 if a character is not in
 * the byte-level alphabet. */
static long byte_level_decode(const int16_t u2b[324], const char *src, uint8_t *dst)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)src;
    size_t n = strlen(src), i = 0;
    long k = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t a = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (a <= 0 || cp < 0 || cp >= 324 || u2b[cp] < 0) return -1;
        dst[k++] = (uint8_t)u2b[cp];
        i += (size_t)a;
    }
    return k;
}

static int build_classes(tok_tokenizer *t, char *err, size_t errlen)
{
    uint8_t *fl = calloc(0x110000, 1);
    if (!fl) return eq_err(err, errlen, "out of memory");
    static const uint32_t ws[] = {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    for (uint32_t c = 9; c <= 13; c++)
        fl[c] |= CL_WS;
    for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++)
        fl[ws[k]] |= CL_WS;
    for (uint32_t c = 0x2000; c <= 0x200A; c++)
        fl[c] |= CL_WS;
    fl['\r'] |= CL_CRLF;
    fl['\n'] |= CL_CRLF;
    /* second[c]: c occurs after the first position of some canonical
     * decomposition, so it may compose with what precedes it. */
    uint8_t *second = calloc(0x110000, 1);
    if (!second) {
        free(fl);
        return eq_err(err, errlen, "out of memory");
    }
    for (uint32_t c = 0; c < 0x110000; c++) {
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) fl[c] |= CL_L;
        if (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) fl[c] |= CL_N;
        if (cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CO ||
            cat == UTF8PROC_CATEGORY_CS)
            continue;
        const utf8proc_property_t *pr = utf8proc_get_property((utf8proc_int32_t)c);
        if (pr->combining_class) fl[c] |= CL_UNSAFE;
        utf8proc_int32_t d[32];
        int bc = 0;
        utf8proc_ssize_t nd =
            utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, UTF8PROC_DECOMPOSE, &bc);
        if (nd < 0 || nd > 32) {
            free(fl), free(second);
            return eq_err(err, errlen, "utf8proc: cannot decompose U+%04X", (unsigned)c);
        }
        if (nd == 1 && (uint32_t)d[0] == c) continue;
        for (utf8proc_ssize_t k = 1; k < nd; k++)
            second[d[k]] = 1;
        /* Changed by NFC on its own (singleton or excluded composite)? */
        utf8proc_uint8_t buf[4], *nfc = NULL;
        utf8proc_ssize_t bl = utf8proc_encode_char((utf8proc_int32_t)c, buf);
        utf8proc_ssize_t nl = utf8proc_map(buf, bl, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (nl != bl || memcmp(nfc, buf, (size_t)bl) != 0) fl[c] |= CL_UNSAFE;
        free(nfc);
    }
    /* Letters and numbers of Unicode 15.1/16.0 (HF's regex), HF-inert code points. */
    for (size_t k = 0; k < sizeof HF_LETTERS / sizeof HF_LETTERS[0]; k++)
        for (uint32_t c = HF_LETTERS[k][0]; c <= HF_LETTERS[k][1]; c++)
            if (utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_CN) fl[c] |= CL_L;
    for (size_t k = 0; k < sizeof HF_NUMBERS / sizeof HF_NUMBERS[0]; k++)
        for (uint32_t c = HF_NUMBERS[k][0]; c <= HF_NUMBERS[k][1]; c++)
            if (utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_CN) fl[c] |= CL_N;
    for (size_t k = 0; k < sizeof HF_NFC_INERT / sizeof HF_NFC_INERT[0]; k++)
        for (uint32_t c = HF_NFC_INERT[k][0]; c <= HF_NFC_INERT[k][1]; c++)
            second[c] = 2;
    /* Seconds, and code points whose decomposition starts with one. */
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (second[c] == 2) { /* HF-inert: a boundary on both sides */
            fl[c] = (uint8_t)((fl[c] & ~CL_UNSAFE) | CL_INERT);
            continue;
        }
        if (second[c]) fl[c] |= CL_UNSAFE;
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
        if (cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CO ||
            cat == UTF8PROC_CATEGORY_CS || (fl[c] & CL_UNSAFE))
            continue;
        utf8proc_int32_t d[32];
        int bc = 0;
        utf8proc_ssize_t nd =
            utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, UTF8PROC_DECOMPOSE, &bc);
        if (nd >= 1 && second[d[0]]) fl[c] |= CL_UNSAFE;
    }
    free(second);
    /* Two-level table with identical blocks shared. */
    size_t nb = 0, cap = 64;
    t->blocks = malloc(cap * 256);
    if (!t->blocks) {
        free(fl);
        return eq_err(err, errlen, "out of memory");
    }
    for (uint32_t b = 0; b < 0x1100; b++) {
        const uint8_t *blk = fl + (size_t)b * 256;
        size_t k;
        for (k = 0; k < nb; k++)
            if (!memcmp(t->blocks + k * 256, blk, 256)) break;
        if (k == nb) {
            if (nb == cap) {
                cap *= 2;
                uint8_t *nbk = realloc(t->blocks, cap * 256);
                if (!nbk) {
                    free(fl);
                    return eq_err(err, errlen, "out of memory");
                }
                t->blocks = nbk;
            }
            memcpy(t->blocks + nb * 256, blk, 256);
            nb++;
        }
        t->stage1[b] = (uint16_t)k;
    }
    free(fl);
    return 0;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jtrue(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static int load_vocab(tok_tokenizer *t, const cJSON *model, const char *path, char *err,
                      size_t errlen)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return eq_err(err, errlen, "%s: model.vocab missing", path);
    uint32_t b2u[256];
    int16_t u2b[324];
    byte_level_maps(b2u, u2b);
    size_t total = 0;
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab)
    {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || d < 0 || d > (1 << 24) || d != (double)(int32_t)d)
            return eq_err(err, errlen, "%s: model.vocab[\"%s\"]: bad id", path, it->string);
        if ((int32_t)d > max_id) max_id = (int32_t)d;
        total += strlen(it->string);
    }
    if (max_id < 0) return eq_err(err, errlen, "%s: model.vocab is empty", path);
    t->n_ids = max_id + 1;
    t->bytes = malloc(total + 1);
    t->off = calloc((size_t)t->n_ids + 1, sizeof *t->off);
    t->present = calloc((size_t)t->n_ids, 1);
    uint32_t *start = calloc((size_t)t->n_ids, sizeof *start);
    uint32_t *len = calloc((size_t)t->n_ids, sizeof *len);
    if (!t->bytes || !t->off || !t->present || !start || !len) {
        free(start), free(len);
        return eq_err(err, errlen, "out of memory");
    }
    size_t pos = 0, count = 0;
    cJSON_ArrayForEach(it, vocab)
    {
        int32_t id = (int32_t)it->valuedouble;
        if (t->present[id]) {
            free(start), free(len);
            return eq_err(err, errlen, "%s: model.vocab: id %d used twice", path, (int)id);
        }
        long k = byte_level_decode(u2b, it->string, (uint8_t *)t->bytes + pos);
        if (k <= 0) {
            free(start), free(len);
            return eq_err(err, errlen,
                          "%s: model.vocab[\"%s\"] is not a byte-level token (only byte-level BPE "
                          "vocabularies are supported)",
                          path, it->string);
        }
        t->present[id] = 1;
        start[id] = (uint32_t)pos;
        len[id] = (uint32_t)k;
        pos += (size_t)k;
        count++;
        if ((size_t)k > t->max_tok_len) t->max_tok_len = (size_t)k;
    }
    /* Re-pack by id so that off[] is monotonic. */
    char *packed = malloc(pos + 1);
    if (!packed) {
        free(start), free(len);
        return eq_err(err, errlen, "out of memory");
    }
    size_t p2 = 0;
    for (int32_t id = 0; id < t->n_ids; id++) {
        t->off[id] = (uint32_t)p2;
        memcpy(packed + p2, t->bytes + start[id], len[id]);
        p2 += len[id];
    }
    t->off[t->n_ids] = (uint32_t)p2;
    free(t->bytes);
    t->bytes = packed;
    free(start), free(len);
    /* bytes -> id hash */
    size_t hs = 1;
    while (hs < count * 2)
        hs <<= 1;
    t->vhash = malloc(hs * sizeof *t->vhash);
    if (!t->vhash) return eq_err(err, errlen, "out of memory");
    memset(t->vhash, 0xFF, hs * sizeof *t->vhash);
    t->vhash_mask = (uint32_t)(hs - 1);
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (!t->present[id]) continue;
        const uint8_t *p = (const uint8_t *)t->bytes + t->off[id];
        size_t n = t->off[id + 1] - t->off[id];
        if (vocab_find(t, p, n) >= 0)
            return eq_err(err, errlen, "%s: model.vocab: two tokens decode to the same bytes",
                          path);
        uint64_t hv = hash_bytes(p, n);
        uint32_t h = (uint32_t)hv & t->vhash_mask;
        while (t->vhash[h].id >= 0)
            h = (h + 1) & t->vhash_mask;
        t->vhash[h] = (struct vslot){id, (uint32_t)(hv >> 32)};
    }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_id[b] = vocab_find(t, &c, 1);
        if (t->byte_id[b] < 0)
            return eq_err(err, errlen, "%s: model.vocab lacks the byte-level token for byte 0x%02X",
                          path, b);
    }
    t->self = calloc((size_t)t->n_ids, 1);
    t->wc = calloc(WC_SIZE, sizeof *t->wc);
    if (!t->self || !t->wc) return eq_err(err, errlen, "out of memory");
    return 0;
}

static int load_merges(tok_tokenizer *t, const cJSON *model, const char *path, char *err,
                       size_t errlen)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return eq_err(err, errlen, "%s: model.merges missing", path);
    int nm = cJSON_GetArraySize(merges);
    size_t hs = 1;
    while (hs < (size_t)nm * 2 + 2)
        hs <<= 1;
    if (t->n_ids >= (1 << ID_BITS) || (size_t)nm >= (1u << RANK_BITS) - 1)
        return eq_err(err, errlen, "%s: vocabulary or merges too large (ids < 2^%d, merges < 2^%d)",
                      path, ID_BITS, RANK_BITS);
    t->mh = calloc(hs, sizeof *t->mh);
    t->merged_id = malloc(((size_t)nm + 1) * sizeof *t->merged_id);
    t->byte_pair = malloc(65536 * sizeof *t->byte_pair);
    if (!t->mh || !t->merged_id || !t->byte_pair) return eq_err(err, errlen, "out of memory");
    t->mh_mask = (uint32_t)(hs - 1);
    uint32_t b2u[256];
    int16_t u2b[324];
    byte_level_maps(b2u, u2b);
    uint8_t *buf = malloc(4 * t->max_tok_len + 16);
    char *tmp = NULL;
    size_t tmpcap = 0;
    if (!buf) return eq_err(err, errlen, "out of memory");
    uint32_t rank = 0;
    const cJSON *m;
    int rc = 0;
    cJSON_ArrayForEach(m, merges)
    {
        const char *a, *b;
        if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
            cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            a = cJSON_GetArrayItem(m, 0)->valuestring;
            b = cJSON_GetArrayItem(m, 1)->valuestring;
        } else if (cJSON_IsString(m) && strchr(m->valuestring, ' ')) {
            size_t l = strlen(m->valuestring);
            if (l + 1 > tmpcap) {
                char *nt = realloc(tmp, l + 1);
                if (!nt) {
                    rc = eq_err(err, errlen, "out of memory");
                    break;
                }
                tmp = nt, tmpcap = l + 1;
            }
            memcpy(tmp, m->valuestring, l + 1);
            char *sp = strchr(tmp, ' ');
            *sp = 0;
            a = tmp, b = sp + 1;
        } else {
            rc =
                eq_err(err, errlen, "%s: model.merges[%u]: expected [a, b] or \"a b\"", path, rank);
            break;
        }
        if (strlen(a) > t->max_tok_len * 2 || strlen(b) > t->max_tok_len * 2) {
            rc = eq_err(err, errlen, "%s: model.merges[%u]: token not in vocab", path, rank);
            break;
        }
        long la = byte_level_decode(u2b, a, buf);
        long lb = la > 0 ? byte_level_decode(u2b, b, buf + la) : -1;
        int32_t ia = la > 0 ? vocab_find(t, buf, (size_t)la) : -1;
        int32_t ib = lb > 0 ? vocab_find(t, buf + la, (size_t)lb) : -1;
        int32_t in = ia >= 0 && ib >= 0 ? vocab_find(t, buf, (size_t)(la + lb)) : -1;
        if (in < 0) {
            rc = eq_err(err, errlen, "%s: model.merges[%u] (\"%s\" \"%s\"): token not in vocab",
                        path, rank, a, b);
            break;
        }
        uint64_t key = pair_key(ia, ib);
        uint32_t h = (uint32_t)hash_pair(key) & t->mh_mask;
        while (t->mh[h] != 0 && t->mh[h] >> RANK_BITS != key)
            h = (h + 1) & t->mh_mask;
        /* A repeated pair keeps its last rank, as HF's HashMap collect does. */
        t->mh[h] = key << RANK_BITS | rank;
        t->merged_id[rank] = in;
        rank++;
    }
    free(buf);
    free(tmp);
    if (rc != 0) return rc;
    t->n_ranks = rank;
    /* Monotone merges (see bpe_bucket)? */
    int64_t *made = malloc((size_t)t->n_ids * sizeof *made);
    if (!made) return eq_err(err, errlen, "out of memory");
    for (int32_t k = 0; k < t->n_ids; k++)
        made[k] = -1;
    const uint64_t rmask = (1u << RANK_BITS) - 1;
    for (uint32_t h = 0; h <= t->mh_mask; h++) {
        if (!t->mh[h]) continue;
        int64_t r = (int64_t)(t->mh[h] & rmask);
        int32_t n = t->merged_id[r];
        if (r > made[n]) made[n] = r;
    }
    t->monotone = true;
    for (uint32_t h = 0; h <= t->mh_mask; h++) {
        if (!t->mh[h]) continue;
        int64_t r = (int64_t)(t->mh[h] & rmask);
        uint64_t key = (t->mh[h] >> RANK_BITS) - 1;
        int32_t a = (int32_t)(key >> ID_BITS), b = (int32_t)(key & ((1u << ID_BITS) - 1));
        if (made[a] >= r || made[b] >= r) t->monotone = false;
    }
    free(made);
    for (int x = 0; x < 256; x++)
        for (int y = 0; y < 256; y++)
            t->byte_pair[x << 8 | y] = merge_find(t, t->byte_id[x], t->byte_id[y]).rank;
    return 0;
}

static int added_cmp(const void *x, const void *y)
{
    const added_token *a = x, *b = y;
    uint8_t fa = (uint8_t)a->s[0], fb = (uint8_t)b->s[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int load_added(tok_tokenizer *t, const cJSON *root, const char *path, char *err,
                      size_t errlen)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return eq_err(err, errlen, "out of memory");
    const cJSON *a;
    cJSON_ArrayForEach(a, arr)
    {
        const char *content = jstr(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!content || !*content || !cJSON_IsNumber(id) || id->valuedouble < 0)
            return eq_err(err, errlen, "%s: added_tokens[%d]: needs \"id\" and \"content\"", path,
                          t->n_added);
        if (jtrue(a, "lstrip") || jtrue(a, "rstrip") || jtrue(a, "single_word") ||
            jtrue(a, "normalized"))
            return eq_err(err, errlen,
                          "%s: added token \"%s\": lstrip/rstrip/single_word/normalized are not "
                          "supported (all must be false)",
                          path, content);
        size_t bad;
        const char *why;
        if (utf8_validate((const uint8_t *)content, strlen(content), &bad, &why) != 0)
            return eq_err(err, errlen, "%s: added token: invalid UTF-8", path);
        added_token *d = &t->added[t->n_added++];
        d->len = strlen(content);
        d->s = malloc(d->len + 1);
        if (!d->s) return eq_err(err, errlen, "out of memory");
        memcpy(d->s, content, d->len + 1);
        d->id = (int32_t)id->valuedouble;
    }
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    for (int b = 0, k = 0; b <= 256; b++) {
        while (k < t->n_added && (uint8_t)t->added[k].s[0] < b)
            k++;
        t->first_start[b] = k;
    }
    t->first_start[256] = t->n_added;
    return 0;
}

static int32_t added_id(const tok_tokenizer *t, const char *content)
{
    for (int k = 0; k < t->n_added; k++)
        if (!strcmp(t->added[k].s, content)) return t->added[k].id;
    return -1;
}

/* Reads a TemplateProcessing "single" template into prefix/suffix ids. */
static int load_template(tok_tokenizer *t, const cJSON *pp, const char *path, char *err,
                         size_t errlen)
{
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    if (!cJSON_IsArray(single))
        return eq_err(err, errlen, "%s: TemplateProcessing without \"single\"", path);
    int cap = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, single)
    {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (!st) continue;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(specials, jstr(st, "id") ? jstr(st, "id") : ""),
            "ids");
        cap += cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : 0;
    }
    t->prefix = malloc(((size_t)cap + 1) * sizeof *t->prefix);
    t->suffix = malloc(((size_t)cap + 2) * sizeof *t->suffix);
    if (!t->prefix || !t->suffix) return eq_err(err, errlen, "out of memory");
    bool seen_a = false;
    cJSON_ArrayForEach(item, single)
    {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (seq) {
            const char *sid = jstr(seq, "id");
            if (!sid || strcmp(sid, "A") != 0 || seen_a)
                return eq_err(err, errlen, "%s: post_processor.single: unsupported Sequence", path);
            seen_a = true;
        } else if (st) {
            const char *name = jstr(st, "id");
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(specials, name ? name : ""), "ids");
            if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) == 0)
                return eq_err(err, errlen,
                              "%s: post_processor: special token \"%s\" not in special_tokens",
                              path, name ? name : "?");
            const cJSON *v;
            cJSON_ArrayForEach(v, ids)
            {
                if (!cJSON_IsNumber(v) || v->valuedouble < 0)
                    return eq_err(err, errlen, "%s: post_processor: bad id", path);
                if (seen_a)
                    t->suffix[t->n_suffix++] = (int32_t)v->valuedouble;
                else
                    t->prefix[t->n_prefix++] = (int32_t)v->valuedouble;
            }
        } else {
            return eq_err(err, errlen, "%s: post_processor.single: unknown item", path);
        }
    }
    if (!seen_a) return eq_err(err, errlen, "%s: post_processor.single lacks $A", path);
    return 0;
}

static int load_post(tok_tokenizer *t, const cJSON *root, const char *path, char *err,
                     size_t errlen)
{
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const cJSON *tmpl = NULL;
    if (pp && !cJSON_IsNull(pp)) {
        const char *type = jstr(pp, "type");
        if (type && !strcmp(type, "TemplateProcessing")) {
            tmpl = pp;
        } else if (type && !strcmp(type, "Sequence")) {
            const cJSON *p;
            cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
            {
                const char *pt = jstr(p, "type");
                if (pt && !strcmp(pt, "TemplateProcessing")) {
                    if (tmpl)
                        return eq_err(err, errlen, "%s: two TemplateProcessing post-processors",
                                      path);
                    tmpl = p;
                } else if (!pt || strcmp(pt, "ByteLevel") != 0) {
                    return eq_err(err, errlen, "%s: unsupported post-processor \"%s\"", path,
                                  pt ? pt : "?");
                }
            }
        } else if (!type || strcmp(type, "ByteLevel") != 0) {
            return eq_err(err, errlen, "%s: unsupported post-processor \"%s\"", path,
                          type ? type : "?");
        }
    }
    t->eos = added_id(t, "<|endoftext|>");
    if (tmpl) {
        if (load_template(t, tmpl, path, err, errlen) != 0) return -1;
        if (t->n_suffix > 0 && t->eos < 0) t->eos = t->suffix[t->n_suffix - 1];
    } else {
        t->prefix = malloc(sizeof *t->prefix);
        t->suffix = malloc(2 * sizeof *t->suffix);
        if (!t->prefix || !t->suffix) return eq_err(err, errlen, "out of memory");
    }
    if (t->eos < 0)
        return eq_err(err, errlen, "%s: no <|endoftext|> added token and no template EOS", path);
    /* The sequence always ends with <|endoftext|>: from the template, or ours. */
    if (t->n_suffix == 0 || t->suffix[t->n_suffix - 1] != t->eos) t->suffix[t->n_suffix++] = t->eos;
    return 0;
}

static int check_pipeline(tok_tokenizer *t, const cJSON *root, const char *path, char *err,
                          size_t errlen)
{
    /* normalizer: null, NFC, or a Sequence of NFC. */
    const cJSON *nz = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (nz && !cJSON_IsNull(nz)) {
        const char *type = jstr(nz, "type");
        if (type && !strcmp(type, "NFC")) {
            t->nfc = true;
        } else if (type && !strcmp(type, "Sequence")) {
            const cJSON *n;
            cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(nz, "normalizers"))
            {
                const char *nt = jstr(n, "type");
                if (!nt || strcmp(nt, "NFC") != 0)
                    return eq_err(err, errlen, "%s: unsupported normalizer \"%s\"", path,
                                  nt ? nt : "?");
                t->nfc = true;
            }
        } else {
            return eq_err(err, errlen, "%s: unsupported normalizer \"%s\"", path,
                          type ? type : "?");
        }
    }
    /* pre_tokenizer: Sequence[Split(QWEN_PATTERN, Isolated), ByteLevel(no prefix, no regex)] */
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    const cJSON *sp = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
    const char *ptype = jstr(pt, "type");
    bool ok = ptype && !strcmp(ptype, "Sequence") && cJSON_GetArraySize(list) == 2 && sp && bl;
    ok = ok && jstr(sp, "type") && !strcmp(jstr(sp, "type"), "Split");
    ok = ok && jstr(cJSON_GetObjectItemCaseSensitive(sp, "pattern"), "Regex") &&
         !strcmp(jstr(cJSON_GetObjectItemCaseSensitive(sp, "pattern"), "Regex"), QWEN_PATTERN);
    ok = ok && jstr(sp, "behavior") && !strcmp(jstr(sp, "behavior"), "Isolated") &&
         !jtrue(sp, "invert");
    ok = ok && jstr(bl, "type") && !strcmp(jstr(bl, "type"), "ByteLevel") &&
         !jtrue(bl, "add_prefix_space") && !jtrue(bl, "use_regex");
    if (!ok)
        return eq_err(err, errlen,
                      "%s: unsupported pre_tokenizer (only the Qwen2/Qwen3 Split regex followed "
                      "by ByteLevel without prefix space or regex is implemented)",
                      path);
    /* model: BPE without dropout, byte fallback, prefixes or suffixes. */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mt = jstr(model, "type");
    if (!cJSON_IsObject(model) || (mt && strcmp(mt, "BPE") != 0))
        return eq_err(err, errlen, "%s: model must be BPE", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return eq_err(err, errlen, "%s: BPE dropout is not supported", path);
    if (jtrue(model, "byte_fallback"))
        return eq_err(err, errlen, "%s: BPE byte_fallback is not supported", path);
    const char *csp = jstr(model, "continuing_subword_prefix");
    const char *ews = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews))
        return eq_err(err, errlen,
                      "%s: continuing_subword_prefix/end_of_word_suffix are not supported", path);
    t->ignore_merges = jtrue(model, "ignore_merges");
    return 0;
}

tok_tokenizer *tok_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *buf = eq_read_file(path, &len, err, errlen);
    if (!buf) return NULL;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!root) {
        eq_err(err, errlen, "%s: not valid JSON", path);
        return NULL;
    }
    tok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        eq_err(err, errlen, "out of memory");
        return NULL;
    }
    t->small_max = SMALL_PIECE;
    t->bucket_min = BUCKET_PIECE;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (check_pipeline(t, root, path, err, errlen) != 0 ||
        load_vocab(t, model, path, err, errlen) != 0 ||
        load_merges(t, model, path, err, errlen) != 0 ||
        load_added(t, root, path, err, errlen) != 0 || load_post(t, root, path, err, errlen) != 0 ||
        build_classes(t, err, errlen) != 0) {
        cJSON_Delete(root);
        tok_free(t);
        return NULL;
    }
    cJSON_Delete(root);
    return t;
}
