/* main.c - `embedq-loadtest`: load-test tools for the embedq worker fleet
 * (docs/loadtest.md).
 *
 *   embedq-loadtest record  ...   a topic or stream -> a dump file
 *   embedq-loadtest replay  ...   a dump or a corpus -> a topic or stream, at a rate profile
 *   embedq-loadtest collect ...   outputs + dead letters + lag -> report.json + plot.svg
 */
#include <stdio.h>
#include <string.h>

#include "lt.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s record|replay|collect [flags]   (%s COMMAND --help for each)\n\n"
            "  record   dump a Kafka topic or a Redis stream to a file\n"
            "  replay   send a dump or a corpus of documents at a rate profile\n"
            "  collect  match outputs and dead letters with a replay manifest; report\n"
            "           throughput, end-to-end latency, missing ids and lag (JSON + SVG)\n",
            LT_PROG, LT_PROG);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "record")) return cmd_record(argc - 1, argv + 1);
    if (!strcmp(c, "replay")) return cmd_replay(argc - 1, argv + 1);
    if (!strcmp(c, "collect")) return cmd_collect(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s'\n", LT_PROG, c);
    usage(stderr);
    return 2;
}
