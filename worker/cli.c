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
    int w = 16; /* the name column: as wide as the longest name */
    for (int i = 0; i < nflags; i++)
        if ((int)strlen(flags[i].name) > w) w = (int)strlen(flags[i].name);
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
        case CLI_LIST:
            break;
        }
        char env[96] = "";
        if (cmd->env_prefix) {
            char n[80];
            cli_env_name(cmd->env_prefix, f->name, n, sizeof n);
            snprintf(env, sizeof env, " [%s]", n);
        }
        printf("  --%-*s %s%s%s\n", w, f->name, f->help, def, env);
    }
    printf("  --%-*s %s\n", w, "help", "print this help and exit");
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

/* Sets flag f from val. src names where val came from, for errors
 * ("flag --x" or "environment variable EMBEDQ_X"). Returns 0 or 2. */
static int apply(const cli_command *cmd, const cli_flag *f, const char *val, const char *src)
{
    long v;
    switch (f->kind) {
    case CLI_STR:
        *(const char **)f->dst = val;
        break;
    case CLI_INT:
        if (parse_long(val, &v) || v < f->min || v > f->max) {
            fprintf(stderr, "embedq %s: %s: expected an integer in %ld..%ld, got '%s'\n", cmd->name,
                    src, f->min, f->max, val);
            return 2;
        }
        *(int *)f->dst = (int)v;
        break;
    case CLI_U64: {
        char *end;
        errno = 0;
        unsigned long long u = strtoull(val, &end, 10);
        if (errno || end == val || *end || val[0] == '-') {
            fprintf(stderr, "embedq %s: %s: expected a non-negative integer, got '%s'\n", cmd->name,
                    src, val);
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
            fprintf(stderr, "embedq %s: %s: expected true or false, got '%s'\n", cmd->name, src,
                    val);
            return 2;
        }
        break;
    case CLI_LIST: {
        cli_list *l = f->dst;
        if (l->n >= CLI_LIST_MAX) {
            fprintf(stderr, "embedq %s: %s: more than %d values\n", cmd->name, src, CLI_LIST_MAX);
            return 2;
        }
        l->items[l->n++] = val;
        break;
    }
    }
    return 0;
}

void cli_env_name(const char *prefix, const char *flag, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%s", prefix);
    for (const char *c = flag; *c && n + 1 < outlen; c++)
        out[n++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    out[n < outlen ? n : outlen - 1] = 0;
}

/* Splits a list variable's copy in place: items separated by ';', where
 * "\;" stands for a ';' inside an item (any other '\' is kept as it is).
 * Calls apply() for each non-empty item. */
static int apply_list(const cli_command *cmd, const cli_flag *f, char *copy, const char *src)
{
    char *item = copy, *w = copy;
    for (char *r = copy;; r++) {
        if (*r == '\\' && r[1] == ';') {
            *w++ = ';';
            r++;
            continue;
        }
        if (*r == ';' || !*r) {
            const bool last = !*r;
            *w = 0;
            if (*item && apply(cmd, f, item, src)) return 2;
            if (last) return 0;
            item = w = r + 1;
            continue;
        }
        *w++ = *r;
    }
}

/* Environment first (EMBEDQ_<FLAG>), so that flags override it. A list
 * variable holds its values separated by ';' ("\;" is a ';' inside a
 * value). The strings stay valid: they point into the environment or into
 * a copy kept until exit. */
static int apply_env(const cli_command *cmd, const cli_flag *flags, int nflags)
{
    for (int j = 0; j < nflags; j++) {
        char name[96], src[128];
        cli_env_name(cmd->env_prefix, flags[j].name, name, sizeof name);
        const char *val = getenv(name);
        if (!val) continue;
        snprintf(src, sizeof src, "environment variable %s", name);
        if (flags[j].kind == CLI_LIST) {
            char *copy = strdup(val); /* kept until exit */
            if (!copy || apply_list(cmd, &flags[j], copy, src)) return 2;
            continue;
        }
        if (flags[j].kind == CLI_BOOL && !*val) continue;
        if (apply(cmd, &flags[j], val, src)) return 2;
    }
    return 0;
}

int cli_parse(const cli_command *cmd, const cli_flag *flags, int nflags, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_help(cmd, flags, nflags);
            return 1;
        }
    if (cmd->env_prefix && apply_env(cmd, flags, nflags)) return 2;
    bool list_from_args[64] = {false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "embedq %s: unexpected argument '%s' (see embedq %s --help)\n",
                    cmd->name, a, cmd->name);
            return 2;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const cli_flag *f = NULL;
        int fi = -1;
        for (int j = 0; j < nflags; j++)
            if (strlen(flags[j].name) == nlen && !strncmp(flags[j].name, name, nlen)) {
                f = &flags[j];
                fi = j;
            }
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
        /* A list given on the command line replaces the environment's. */
        if (f->kind == CLI_LIST && fi < 64 && !list_from_args[fi]) {
            ((cli_list *)f->dst)->n = 0;
            list_from_args[fi] = true;
        }
        char src[96];
        snprintf(src, sizeof src, "flag --%s", f->name);
        if (apply(cmd, f, val, src)) return 2;
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
    static const char *const ok[] = {"cuda", "cpu", "cpu-fp32", "cpu-bf16", "twin", "emu"};
    if (!val || !strcmp(val, "auto")) {
        *device = NULL;
        return 0;
    }
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(val, ok[i])) {
            *device = ok[i];
            return 0;
        }
    fprintf(stderr,
            "embedq %s: flag --device: expected cuda, cpu, cpu-fp32, cpu-bf16, twin, emu or auto, "
            "got '%s'\n",
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

int cmd_gen_model(int argc, char **argv)
{
    static const cli_command cmd = {
        "gen-model", "--preset tiny|0.6b|4b|8b --out DIR [--seed N] [--tokenizer PATH]",
        "Writes a Qwen3-Embedding checkpoint in the Hugging Face layout (config.json,\n"
        "tokenizer.json with the embedding repos' <|endoftext|> post-processor, bf16\n"
        "safetensors, sharded with an index for 4b/8b) with random weights,\n"
        "deterministic for a seed. 0.6b/4b/8b have the real shapes; tiny has the real\n"
        "vocabulary, 2 layers and heads*head_dim != hidden_size.",
        NULL};
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
#ifdef EMBEDQ_HAVE_WORKER
    fprintf(f, "  worker     consume text from Kafka or Redis Streams, publish vectors "
               "(the fleet member)\n");
    fprintf(f, "  serve      the OpenAI-compatible embeddings API (POST /v1/embeddings)\n");
#endif
#ifdef EMBEDQ_HAVE_KAFKA
    fprintf(f, "  mock-kafka a Kafka-protocol broker on loopback (librdkafka's mock cluster), "
               "for tests\n");
#endif
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
#ifdef EMBEDQ_HAVE_WORKER
    if (!strcmp(c, "worker")) return cmd_worker(argc - 1, argv + 1);
    if (!strcmp(c, "serve")) return cmd_serve(argc - 1, argv + 1);
#endif
#ifdef EMBEDQ_HAVE_KAFKA
    if (!strcmp(c, "mock-kafka")) return cmd_mock_kafka(argc - 1, argv + 1);
#endif
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "embedq: unknown command '%s'\n", c);
    usage(stderr);
    return 2;
}
