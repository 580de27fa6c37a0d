/* notify_listen.c: a stand-in for systemd's notify socket in tests. Binds an AF_UNIX datagram
 * socket at PATH ("@name" for an abstract one) and prints each datagram as one line,
 * "<ms since start> <payload>", newlines in the payload shown as '|'. Says "listening" on
 * stderr once bound, so a test knows when to start the service. Exits 0 after SECONDS or on
 * SIGTERM/SIGINT, removing PATH.
 *
 *   usage: notify_listen PATH SECONDS */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int signum)
{
    stop = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bind_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    socklen_t sa_len;
    int fd;

    if (len < 2 || len >= sizeof(sa.sun_path)) {
        fprintf(stderr, "notify_listen: bad socket path '%s'\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, len);
    sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0'; /* abstract: the name is the bytes after the NUL, no terminator */
        sa_len--;
    } else {
        unlink(path); /* a stale socket from an earlier run would make bind() fail */
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sa_len) != 0) {
        fprintf(stderr, "notify_listen: cannot bind '%s': %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* One datagram, one line: '|' for newlines keeps "READY=1\nSTATUS=x" greppable as a unit. */
static void print_datagram(int64_t t, char *buf, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\n' || buf[i] == '\0')
            buf[i] = '|';
    printf("%lld %.*s\n", (long long)t, (int)n, buf);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t block, unblocked;
    char buf[4096];
    int64_t t0 = now_ms(), deadline;
    char *end;
    long secs;
    int fd;

    if (argc != 3 || (secs = strtol(argv[2], &end, 10)) <= 0 || *end) {
        fprintf(stderr, "usage: notify_listen PATH SECONDS\n");
        return 2;
    }
    deadline = t0 + (int64_t)secs * 1000;
    /* Signals stay blocked except inside ppoll(), so one arriving between the check of `stop`
     * and the wait cannot be missed until the deadline. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &unblocked);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if ((fd = bind_socket(argv[1])) < 0)
        return 1;
    fprintf(stderr, "notify_listen: listening on %s\n", argv[1]);
    while (!stop) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        struct timespec ts;
        ssize_t n;

        if (left <= 0)
            break;
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000;
        if (ppoll(&p, 1, &ts, &unblocked) <= 0)
            continue; /* timeout or EINTR: the loop condition decides */
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n >= 0)
            print_datagram(now_ms() - t0, buf, n);
    }
    close(fd);
    if (argv[1][0] != '@')
        unlink(argv[1]);
    return 0;
}
