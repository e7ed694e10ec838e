/* cli.h - the `embedq` command line: flag tables, JSONL helpers.
 *
 * Flags are declared in a table (name, kind, destination, help, default) and
 * parsed by cli_parse(): `--name value` or `--name=value`; an unknown flag, a
 * missing value or a malformed number is reported naming the flag, and the
 * command exits with status 2. `--help` / `-h` prints the table.
 */
#ifndef EQ_CLI_H
#define EQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CLI_STR, CLI_INT, CLI_U64, CLI_BOOL, CLI_LIST } cli_kind;

/* A repeatable flag's values (CLI_LIST), in order. */
#define CLI_LIST_MAX 64
typedef struct {
    const char *items[CLI_LIST_MAX];
    int n;
} cli_list;

typedef struct {
    const char *name; /* without the leading "--"                        */
    cli_kind kind;
    void *dst;        /* const char ** | int * | uint64_t * | bool * | cli_list * */
    long min, max;    /* bounds for CLI_INT (inclusive)                    */
    const char *help; /* one line; the default is printed from *dst        */
} cli_flag;

typedef struct {
    const char *name;    /* e.g. "embed"                                   */
    const char *usage;   /* e.g. "--model DIR [--dimensions N]"            */
    const char *summary; /* a paragraph printed by --help                  */
    /* Non-NULL: every flag can also be set by the environment variable
     * <env_prefix><FLAG> (upper case, '-' -> '_'), e.g. EMBEDQ_BATCH_TOKENS;
     * a flag on the command line wins. Errors name the variable. */
    const char *env_prefix;
} cli_command;

/* The environment variable of a flag: prefix + upper-cased name. */
void cli_env_name(const char *prefix, const char *flag, char *out, size_t outlen);

/* Parses argv[1..argc) (argv[0] is the command name). Returns 0 on success,
 * 1 if help was printed (the caller exits 0), 2 on a bad flag (message
 * already printed to stderr, naming the flag). */
int cli_parse(const cli_command *cmd, const cli_flag *flags, int nflags, int argc, char **argv);

/* A required string flag that is missing: prints the error, returns 2. */
int cli_missing(const cli_command *cmd, const char *flag);

/* --device for the commands that open an engine: cuda | cpu | twin | emu |
 * auto.
 * CLI_DEVICE_HELP is its help line. cli_device() checks val and sets *device
 * to the eq_options.device value (NULL for auto: cuda when a GPU is present,
 * else cpu). Returns 0, or 2 after printing a message naming the flag. */
#define CLI_DEVICE_HELP                                                                            \
    "cuda | cpu (bf16 GEMMs where the CPU has AVX512-BF16, else fp32) | cpu-fp32 (the fp32 "      \
    "reference) | cpu-bf16 (bf16 or fail) | twin (the CUDA plan on CPU twins: tests, slow) | "    \
    "emu (the CUDA plan and kernels on the kernel emulator: tests, slower) | auto (cuda when a "  \
    "GPU is present, else cpu)"
int cli_device(const cli_command *cmd, const char *val, const char **device);

/* JSON output helpers (stdout-style FILE*). */
void json_put_string(FILE *f, const char *s, size_t len);
void json_put_float(FILE *f, float v); /* always a float literal: 1.0, never 1 */

/* Reads one line (without the trailing '\n' / "\r\n") into *buf (grown as
 * needed). Returns its length, or -1 at end of input. */
long jsonl_read_line(FILE *in, char **buf, size_t *cap);

int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_gen_model(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* `embedq worker`; only in builds with the broker libraries (EMBEDQ_HAVE_WORKER). */
int cmd_worker(int argc, char **argv);
/* `embedq serve`: the worker's pipeline with no queue, the API only. */
int cmd_serve(int argc, char **argv);
/* `embedq mock-kafka`; only in builds with librdkafka (EMBEDQ_HAVE_KAFKA). */
int cmd_mock_kafka(int argc, char **argv);

#endif
