/* publish_health_test.c - worker/publish_health.h on its own, with made-up
 * clocks: healthy until every publish failed (or publishes waited with none
 * accepted) for the window, the reason given, healthy again at the next
 * success; window 0 never unhealthy. */
#include <stdio.h>
#include <string.h>

#include "publish_health.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);                             \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static bool healthy(const pub_health *h, uint64_t now, char *why)
{
    why[0] = 0;
    return ph_healthy(h, now, why, 256);
}

static void test_failing(void)
{
    pub_health h;
    char why[256];
    ph_init(&h, 2000);
    CHECK(healthy(&h, 1000, why));
    ph_ok(&h, 1000);
    ph_fail(&h, 1500, "OOM command not allowed");
    CHECK(healthy(&h, 3499, why)); /* 1999 ms of failures */
    ph_fail(&h, 3000, NULL);       /* keeps the reason    */
    CHECK(!healthy(&h, 3500, why));
    CHECK(strstr(why, "publishing failing for 2 s") != NULL);
    CHECK(strstr(why, "2 attempts") != NULL);
    CHECK(strstr(why, "last error: OOM command not allowed") != NULL);
    ph_ok(&h, 3600); /* one success: healthy again, count restarts */
    CHECK(healthy(&h, 9000, why));
    ph_fail(&h, 9000, "x");
    CHECK(healthy(&h, 10999, why));
    CHECK(!healthy(&h, 11000, why));
    CHECK(strstr(why, "1 attempts") != NULL);
}

static void test_waiting(void)
{
    pub_health h;
    char why[256];
    ph_init(&h, 2000);
    ph_waiting(&h, 1000, true);
    ph_waiting(&h, 2500, true); /* still the same wait */
    CHECK(healthy(&h, 2999, why));
    CHECK(!healthy(&h, 3000, why));
    CHECK(strstr(why, "nothing published for 2 s while outputs wait") != NULL);
    /* Deliveries during a wait that never ends: healthy while they come. */
    ph_ok(&h, 3100);
    CHECK(healthy(&h, 5099, why));
    CHECK(!healthy(&h, 5100, why));
    /* Nothing waiting any more: healthy, and a new wait starts over. */
    ph_waiting(&h, 5200, false);
    CHECK(healthy(&h, 9000, why));
    ph_waiting(&h, 9000, true);
    CHECK(healthy(&h, 10999, why));
    CHECK(!healthy(&h, 11000, why));
}

static void test_off(void)
{
    pub_health h;
    char why[256];
    ph_init(&h, 0);
    ph_fail(&h, 1, "e");
    ph_waiting(&h, 1, true);
    CHECK(healthy(&h, 1000000, why));
    CHECK(ph_healthy(NULL, 5, why, sizeof why));
}

int main(void)
{
    test_failing();
    test_waiting();
    test_off();
    if (failures) {
        fprintf(stderr, "publish_health_test: %d failures\n", failures);
        return 1;
    }
    printf("publish_health_test: ok\n");
    return 0;
}
