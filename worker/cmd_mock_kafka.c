/* cmd_mock_kafka.c - `embedq mock-kafka`: librdkafka's mock cluster as a
 * Kafka-protocol broker on loopback, in its own process.
 *
 * Prints the bootstrap address as the first line of stdout, then serves
 * until SIGTERM/SIGINT. Any Kafka client (the worker, kcat, the tests'
 * producers) can connect. Faults are injected by writing commands to its
 * stdin, one per line, each answered on stdout with "ok ..." or "error ...":
 *
 *   down BROKER_ID            the broker stops answering (set_down)
 *   up BROKER_ID              and comes back (set_up)
 *   rtt BROKER_ID MS          adds MS of round-trip time
 *   error API_KEY COUNT CODE  the next COUNT requests of API_KEY fail with
 *                             error CODE (Produce 0, Fetch 1, OffsetCommit 8,
 *                             JoinGroup 11, Heartbeat 12, SyncGroup 14; codes
 *                             as in the Kafka protocol, e.g. 7 = timed out)
 *   clear API_KEY             drops the errors still queued for API_KEY
 *   topic NAME PARTITIONS     creates a topic
 *   leader TOPIC PARTITION ID moves a partition's leader to broker ID
 *
 * End of stdin is not a stop signal (the broker may run with stdin closed).
 * Limits of the mock (librdkafka 2.0.2): no transactions, no static
 * membership, ~5 MiB of log per partition; the first group join waits ~3 s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cli.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* Applies one stdin command line; answers on stdout. */
static void control(rd_kafka_mock_cluster_t *mc, char *line)
{
    char cmd[32] = "", arg[256] = "";
    long a = 0, b = 0, c = 0;
    int n = sscanf(line, "%31s %ld %ld %ld", cmd, &a, &b, &c);
    if (n < 1) return;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!strcmp(cmd, "down") && n == 2)
        err = rd_kafka_mock_broker_set_down(mc, (int32_t)a);
    else if (!strcmp(cmd, "up") && n == 2)
        err = rd_kafka_mock_broker_set_up(mc, (int32_t)a);
    else if (!strcmp(cmd, "rtt") && n == 3)
        err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
    else if (!strcmp(cmd, "error") && n == 4) {
        if (a < 0 || a > 32767 || b < 1 || b > 100000) {
            printf("error %s: API_KEY 0..32767, COUNT 1..100000\n", line);
            fflush(stdout);
            return;
        }
        rd_kafka_resp_err_t *errs = calloc((size_t)b, sizeof *errs);
        if (!errs) {
            printf("error %s: out of memory\n", line);
            fflush(stdout);
            return;
        }
        for (long i = 0; i < b; i++)
            errs[i] = (rd_kafka_resp_err_t)c;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)b, errs);
        free(errs);
    } else if (!strcmp(cmd, "clear") && n == 2 && a >= 0 && a <= 32767) {
        rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
    } else if (!strcmp(cmd, "topic") && sscanf(line, "%31s %255s %ld", cmd, arg, &a) == 3 &&
               a >= 1 && a <= 10000) {
        err = rd_kafka_mock_topic_create(mc, arg, (int)a, 1);
    } else if (!strcmp(cmd, "leader") &&
               sscanf(line, "%31s %255s %ld %ld", cmd, arg, &a, &b) == 4) {
        err = rd_kafka_mock_partition_set_leader(mc, arg, (int32_t)a, (int32_t)b);
    } else {
        printf("error unknown command: %s\n", line);
        fflush(stdout);
        return;
    }
    if (err)
        printf("error %s: %s\n", line, rd_kafka_err2str(err));
    else
        printf("ok %s\n", line);
    fflush(stdout);
}

int cmd_mock_kafka(int argc, char **argv)
{
    int partitions = 4, brokers = 1;
    const char *topics = NULL;
    cli_flag flags[] = {
        {"partitions", CLI_INT, &partitions, 1, 10000, "partitions of each --topics topic"},
        {"brokers", CLI_INT, &brokers, 1, 16, "brokers in the cluster"},
        {"topics", CLI_STR, &topics, 0, 0,
         "comma-separated topics to create (others are auto-created on first use)"},
    };
    const cli_command cmd = {
        "mock-kafka", "[--partitions N] [--topics a,b,c] [--brokers N]",
        "Runs librdkafka's mock cluster as a Kafka-protocol broker on loopback. Prints its "
        "bootstrap address as the first line of stdout and serves until SIGTERM. Fault "
        "commands on stdin: down ID | up ID | rtt ID MS | error API_KEY COUNT CODE | topic "
        "NAME PARTITIONS | leader TOPIC PARTITION ID (see docs/kafka.md).",
        NULL};
    int rc = cli_parse(&cmd, flags, (int)(sizeof flags / sizeof *flags), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the cluster's thread; keep it quiet. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "embedq mock-kafka: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "embedq mock-kafka: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "embedq mock-kafka: could not start the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    if (topics) {
        char *list = strdup(topics), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!*t) continue;
            rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, t, partitions, 1);
            if (err) {
                fprintf(stderr, "embedq mock-kafka: --topics: creating '%s': %s\n", t,
                        rd_kafka_err2str(err));
                free(list);
                rd_kafka_mock_cluster_destroy(mc);
                rd_kafka_destroy(rk);
                return 1;
            }
        }
        free(list);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    fprintf(stderr, "embedq mock-kafka: serving %s (%d broker%s); SIGTERM stops it\n",
            rd_kafka_mock_cluster_bootstraps(mc), brokers, brokers == 1 ? "" : "s");

    char line[512];
    size_t used = 0;
    bool stdin_open = true;
    while (!stop_flag) {
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        int pr = stdin_open ? poll(&p, 1, 200) : (usleep(200 * 1000), 0);
        if (pr <= 0) continue;
        ssize_t n = read(STDIN_FILENO, line + used, sizeof line - 1 - used);
        if (n <= 0) {
            if (n == 0 || (errno != EINTR && errno != EAGAIN)) stdin_open = false;
            continue;
        }
        used += (size_t)n;
        line[used] = 0;
        char *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            control(mc, line);
            size_t rest = used - (size_t)(nl + 1 - line);
            memmove(line, nl + 1, rest);
            used = rest;
            line[used] = 0;
        }
        if (used == sizeof line - 1) used = 0; /* an over-long line: drop it */
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
