/* ptime: run a command, append "label wall_s max_rss_kib exit_code cpu_s" to a file.
 *
 * Built statically by the benchmark so it runs inside a bare rootfs (no python there).
 * max_rss_kib comes from wait4(): the largest resident set of the command or of any
 * descendant it waited for (Linux folds children's ru_maxrss into the parent's), i.e.
 * the peak of the biggest single process, not the sum of a pipeline. cpu_s is user + system
 * time of the command and its waited-for descendants (robust against a shared machine).
 * usage: ptime RESULTS LABEL CMD [ARG...]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: ptime RESULTS LABEL CMD [ARG...]\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[3], argv + 3);
        fprintf(stderr, "ptime: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *out = fopen(argv[1], "a");
    if (out == NULL) {
        perror(argv[1]);
        return 2;
    }
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    fprintf(out, "%s %.6f %ld %d %.6f\n", argv[2], wall, ru.ru_maxrss, code, cpu);
    fclose(out);
    return code;
}
