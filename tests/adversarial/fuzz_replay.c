/*
 * fuzz_replay.c - replays committed fuzz inputs through a libFuzzer harness
 * in the ordinary (gcc, release and ASan+UBSan) builds, where libFuzzer
 * itself is not linked (issue 6: "crashes found become regression inputs").
 *
 * Linked with one fuzz/fuzz_<name>.c; every argument is a file or a
 * directory whose regular files are each passed once to
 * LLVMFuzzerTestOneInput. A crash, an abort or a sanitizer report fails the
 * ctest; a missing directory is skipped (no regressions yet), a file that
 * cannot be read is an error. Prints how many inputs ran.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { REPLAY_MAX_INPUT = 16 << 20 }; /* larger inputs are not fuzz inputs */

static int replay_file(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long len;
    int r = -1;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > REPLAY_MAX_INPUT ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "fuzz_replay: %s: cannot read\n", path);
        goto out;
    }
    /* one byte more than needed, so an empty input still has a buffer */
    if ((data = malloc((size_t)len + 1)) == NULL || fread(data, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "fuzz_replay: %s: cannot read\n", path);
        goto out;
    }
    (void)LLVMFuzzerTestOneInput(data, (size_t)len);
    ++*count;
    r = 0;
out:
    free(data);
    if (f != NULL)
        fclose(f);
    return r;
}

static int replay_path(const char *path, unsigned long *count)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    char child[4096];
    int r = 0;

    if (stat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return replay_file(path, count);
    if ((d = opendir(path)) == NULL)
        return -1;
    while (r == 0 && (e = readdir(d)) != NULL) {
        int n;
        if (e->d_name[0] == '.')
            continue;
        n = snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(child))
            r = -1;
        else if (stat(child, &st) == 0 && S_ISREG(st.st_mode))
            r = replay_file(child, count);
    }
    closedir(d);
    return r;
}

int main(int argc, char **argv)
{
    unsigned long count = 0;

    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i], &count) != 0) {
            fprintf(stderr, "fuzz_replay: %s: failed\n", argv[i]);
            return 1;
        }
    }
    printf("fuzz_replay: %lu inputs replayed without a crash\n", count);
    return 0;
}
