/* fuzz_replay.c - runs LLVMFuzzerTestOneInput over files and directories
 * (a corpus) without libFuzzer, so every build checks the seed corpus and
 * any crash reproducer: fuzz_safetensors_replay DIR_OR_FILE...
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    char err[EQ_ERRLEN];
    size_t len = 0;
    char *buf = eq_read_file(path, &len, err, sizeof err);
    if (!buf) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    /* Copy to an exact-size allocation so ASan sees reads past the end. */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "%s: not found\n", argv[i]);
            bad++;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad += run_file(argv[i]) != 0;
            n++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            bad += run_file(p) != 0;
            n++;
        }
        if (d) closedir(d);
    }
    printf("replayed %d inputs, %d unreadable\n", n, bad);
    return bad || n == 0 ? 1 : 0;
}
