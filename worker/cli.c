/* cli.c - `embedq` entry point and the flag parser (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "genmodel.h"

static void print_help(const cli_command *cmd, const cli_flag *flags, int nflags)
{
    printf("usage: embedq %s %s\n\n%s\n\nflags:\n", cmd->name, cmd->usage, cmd->summary);
    for (int i = 0; i < nflags; i++) {
        const cli_flag *f = &flags[i];
        char def[64] = "";
        switch (f->kind) {
        case CLI_STR: {
            const char *s = *(const char **)f->dst;
            if (s) snprintf(def, sizeof def, " (default: %s)", s);
            break;
        }
        case CLI_INT:
            snprintf(def, sizeof def, " (default: %d)", *(int *)f->dst);
            break;
        case CLI_U64:
            snprintf(def, sizeof def, " (default: %" PRIu64 ")", *(uint64_t *)f->dst);
            break;
        case CLI_BOOL:
            break;
        }
        printf("  --%-16s %s%s\n", f->name, f->help, def);
    }
    printf("  --%-16s %s\n", "help", "print this help and exit");
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

int cli_parse(const cli_command *cmd, const cli_flag *flags, int nflags, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(cmd, flags, nflags);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "embedq %s: unexpected argument '%s' (see embedq %s --help)\n",
                    cmd->name, a, cmd->name);
            return 2;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const cli_flag *f = NULL;
        for (int j = 0; j < nflags; j++)
            if (strlen(flags[j].name) == nlen && !strncmp(flags[j].name, name, nlen)) f = &flags[j];
        if (!f) {
            fprintf(stderr, "embedq %s: unknown flag '--%.*s' (see embedq %s --help)\n", cmd->name,
                    (int)nlen, name, cmd->name);
            return 2;
        }
        if (f->kind == CLI_BOOL && !eq) {
            *(bool *)f->dst = true;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "embedq %s: flag --%s needs a value\n", cmd->name, f->name);
            return 2;
        }
        long v;
        switch (f->kind) {
        case CLI_STR:
            *(const char **)f->dst = val;
            break;
        case CLI_INT:
            if (parse_long(val, &v) || v < f->min || v > f->max) {
                fprintf(stderr, "embedq %s: flag --%s: expected an integer in %ld..%ld, got '%s'\n",
                        cmd->name, f->name, f->min, f->max, val);
                return 2;
            }
            *(int *)f->dst = (int)v;
            break;
        case CLI_U64: {
            char *end;
            errno = 0;
            unsigned long long u = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-') {
                fprintf(stderr, "embedq %s: flag --%s: expected a non-negative integer, got '%s'\n",
                        cmd->name, f->name, val);
                return 2;
            }
            *(uint64_t *)f->dst = u;
            break;
        }
        case CLI_BOOL:
            if (!strcmp(val, "true") || !strcmp(val, "1"))
                *(bool *)f->dst = true;
            else if (!strcmp(val, "false") || !strcmp(val, "0"))
                *(bool *)f->dst = false;
            else {
                fprintf(stderr, "embedq %s: flag --%s: expected true or false, got '%s'\n",
                        cmd->name, f->name, val);
                return 2;
            }
            break;
        }
    }
    return 0;
}

int cli_missing(const cli_command *cmd, const char *flag)
{
    fprintf(stderr, "embedq %s: flag --%s is required (see embedq %s --help)\n", cmd->name, flag,
            cmd->name);
    return 2;
}

int cli_device(const cli_command *cmd, const char *val, const char **device)
{
    static const char *const ok[] = {"cuda", "cpu", "twin"};
    if (!val || !strcmp(val, "auto")) {
        *device = NULL;
        return 0;
    }
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(val, ok[i])) {
            *device = ok[i];
            return 0;
        }
    fprintf(stderr, "embedq %s: flag --device: expected cuda, cpu, twin or auto, got '%s'\n",
            cmd->name, val);
    return 2;
}

void json_put_string(FILE *f, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20) {
                fputs("\\u00", f);
                putc(hex[c >> 4], f);
                putc(hex[c & 15], f);
            } else {
                putc(c, f);
            }
        }
    }
    putc('"', f);
}

void json_put_float(FILE *f, float v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%.9g", (double)v);
    /* JSON has no inf/nan; the engine never returns them (it fails the batch). */
    if (strspn(b, "-0123456789") == (size_t)n) {
        b[n++] = '.';
        b[n++] = '0';
        b[n] = 0;
    }
    fputs(b, f);
}

long jsonl_read_line(FILE *in, char **buf, size_t *cap)
{
    ssize_t n = getline(buf, cap, in);
    if (n < 0) return -1;
    if (n > 0 && (*buf)[n - 1] == '\n') (*buf)[--n] = 0;
    if (n > 0 && (*buf)[n - 1] == '\r') (*buf)[--n] = 0;
    return (long)n;
}

bool json_has_nul_escape(const char *s, size_t len)
{
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            if (s[i] == '"') in_str = true;
            continue;
        }
        if (s[i] == '"') {
            in_str = false;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && !strncmp(s + i + 2, "0000", 4)) return true;
            i++; /* skip the escaped character */
        }
    }
    return false;
}

int cmd_gen_model(int argc, char **argv)
{
    static const cli_command cmd = {
        "gen-model", "--preset tiny|0.6b|4b|8b --out DIR [--seed N] [--tokenizer PATH]",
        "Writes a Qwen3-Embedding checkpoint in the Hugging Face layout (config.json,\n"
        "tokenizer.json with the embedding repos' <|endoftext|> post-processor, bf16\n"
        "safetensors, sharded with an index for 4b/8b) with random weights,\n"
        "deterministic for a seed. 0.6b/4b/8b have the real shapes; tiny has the real\n"
        "vocabulary, 2 layers and heads*head_dim != hidden_size."};
    const char *preset = NULL, *out = NULL, *tokenizer = NULL;
    uint64_t seed = 0;
    cli_flag flags[] = {
        {"preset", CLI_STR, &preset, 0, 0, "tiny | 0.6b | 4b | 8b"},
        {"out", CLI_STR, &out, 0, 0, "output directory (created if missing)"},
        {"seed", CLI_U64, &seed, 0, 0, "random seed"},
        {"tokenizer", CLI_STR, &tokenizer, 0, 0,
         "source tokenizer.json (default: $EMBEDQ_TOKENIZER_JSON, else the one .ci/setup "
         "installed)"},
    };
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof flags[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!preset) return cli_missing(&cmd, "preset");
    if (!out) return cli_missing(&cmd, "out");
    char err[EQ_ERRLEN];
    if (genmodel_write(preset, out, seed, tokenizer, err, sizeof err) != 0) {
        fprintf(stderr, "embedq gen-model: %s\n", err);
        return 1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: embedq <command> [flags]   (embedq <command> --help for its flags)\n\n"
            "commands:\n"
            "  embed      JSONL texts on stdin -> JSONL vectors\n"
            "  tokenize   JSONL texts on stdin -> JSONL token ids, exactly as the model sees them\n"
            "  gen-model  write a random-weight checkpoint in the real Hugging Face layout\n"
            "  bench      throughput, latency, memory and MFU of the engine on fixed or mixed "
            "lengths\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "embed")) return cmd_embed(argc - 1, argv + 1);
    if (!strcmp(c, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(c, "gen-model")) return cmd_gen_model(argc - 1, argv + 1);
    if (!strcmp(c, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "embedq: unknown command '%s'\n", c);
    usage(stderr);
    return 2;
}
