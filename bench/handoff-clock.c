/* The clock of bench/handoff inside the test guest: busybox `date` there has no %N, and
 * /proc/uptime counts in 10 ms steps. scripts/test-guest builds this with `cc -static` into the
 * image as /bench/clock.
 *
 *   clock                 prints CLOCK_MONOTONIC in nanoseconds
 *   clock FILE [STATUS]   appends it to FILE as a line, then exits with STATUS (default 0)
 *   clock --lines         copies stdin to stdout, each line prefixed with the time it was read
 *                         (where kvmgpu's time goes: its --json step lines, as they arrive),
 *                         each line written at once: bench/hugepages-guest polls the file for
 *                         kvmgpu's "running" line while kvmgpu still runs
 *
 * The second form is the mark between the two phases of a handoff: kvmgpu runs it as its
 * prestart hook (with STATUS 1, so that the launch stops there and undoes itself), the plain
 * script runs it at the same point, the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char** argv) {
    if (argc == 2 && strcmp(argv[1], "--lines") == 0) {
        char line[4096];
        setvbuf(stdin, NULL, _IONBF, 0);
        setvbuf(stdout, NULL, _IOLBF, 0);
        while (fgets(line, sizeof line, stdin)) printf("%lld %s", now_ns(), line);
        return 0;
    }
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock: clock_gettime(CLOCK_MONOTONIC)");
        return 2;
    }
    const long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (argc < 2) {
        printf("%lld\n", ns);
        return 0;
    }
    FILE* f = fopen(argv[1], "a");
    if (!f || fprintf(f, "%lld\n", ns) < 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 2;
    }
    return argc > 2 ? atoi(argv[2]) : 0;
}
