/* tokenizer.h - Hugging Face tokenizer.json, Qwen2/Qwen3 byte-level BPE.
 *
 * Reproduces `tokenizers` exactly for this family: added tokens matched in
 * the raw text first; NFC on the rest; the Split pre-tokenizer regex of
 * ../shared/QWEN3.md with full Unicode classes; GPT-2 byte-level mapping;
 * BPE merges by rank; the post-processor (TemplateProcessing appending
 * <|endoftext|>, or, when tokenizer.json has none, <|endoftext|> appended by
 * us); truncation to max_len keeping room for the final token.
 *
 * Thread safety: a tok_tokenizer is read-only after tok_load/tok_set_vocab_rows
 * and may be shared; tok_encode is safe to call concurrently from threads.
 */
#ifndef EQ_TOKENIZER_H
#define EQ_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;

/* Loads tokenizer.json. Returns NULL with a message in err on failure. */
tok_tokenizer *tok_load(const char *path, char *err, size_t errlen);
void tok_free(tok_tokenizer *t);

/* The 4B/8B rule: added tokens whose id >= rows (no embedding row) are not
 * matched as added tokens; their literal text is encoded as ordinary text.
 * rows <= 0 disables the rule. Call before sharing the tokenizer. */
void tok_set_vocab_rows(tok_tokenizer *t, int32_t rows);

/* Id of <|endoftext|> (151643 for Qwen3). */
int32_t tok_eos_id(const tok_tokenizer *t);

/* Encodes one input. If instruction != NULL the text encoded is
 * "Instruct: " + instruction + "\nQuery:" + text. max_len counts every id,
 * the final <|endoftext|> included (<= 0: no limit); content beyond
 * max_len - 1 tokens is dropped and *truncated set.
 * Returns the number of ids (>= 1) with *out malloc'd (caller frees), or -1
 * with a message in err (invalid UTF-8 names the byte offset). */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len, const char *instruction,
               size_t ilen, int max_len, int32_t **out, bool *truncated, char *err, size_t errlen);

/* Testing only: which BPE implementation handles a piece of n bytes:
 * n <= small_max: linear scan (small_max is clamped to 1..48, default 48);
 * n >= bucket_min: rank buckets (default 2048; used only when the merges
 * are monotone, true for Qwen); otherwise the heap. All three give the same
 * ids; the tests run the corpus through each. Call before sharing t. */
void tok_set_bpe_paths(tok_tokenizer *t, size_t small_max, size_t bucket_min);

/* Raw bytes of token `id` (base vocabulary, byte-level map undone, or the
 * content of an added token), not NUL-terminated; NULL for an unknown id.
 * The pointer lives as long as t. For diagnostics and decoding. */
const char *tok_token_bytes(const tok_tokenizer *t, int32_t id, size_t *len);

#endif
