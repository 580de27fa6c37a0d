/* sdnotify.c: the sd_notify(3) protocol by hand: newline-separated VAR=value assignments, one
 * datagram per message, to the AF_UNIX socket named by $NOTIFY_SOCKET. Owns that socket and the
 * watchdog timer; knows nothing of the gateway, which decides when it is ready or stopping. */
#include "rtgate/sdnotify.h"

#include "rtgate/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define SDNOTIFY_STATUS_MAX 256 /* longer statuses are cut; systemd shows one line anyway */

static struct {
    int fd; /* -1: not under systemd (or closed), every call is a no-op */
    struct sockaddr_un addr;
    socklen_t addr_len;
    uv_timer_t watchdog;
    int has_watchdog, sent_ready, warned;
} sd = {.fd = -1};

/* "/path" or "@abstract" (sd_notify(3)); anything else (e.g. vsock: of newer systemd) is
 * refused. The length counts the path's NUL, but for an abstract name only the leading NUL
 * that replaces '@': abstract names are raw bytes, a trailing NUL would become part of it. */
static int parse_socket(const char *s)
{
    size_t len = strlen(s);

    memset(&sd.addr, 0, sizeof(sd.addr));
    sd.addr.sun_family = AF_UNIX;
    if ((s[0] != '/' && s[0] != '@') || len < 2 || len >= sizeof(sd.addr.sun_path))
        return -1;
    memcpy(sd.addr.sun_path, s, len);
    if (s[0] == '@') {
        sd.addr.sun_path[0] = '\0';
        sd.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        sd.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    return 0;
}

/* Never blocks the loop: a full receive queue (EAGAIN) drops the message, as sd_notify()
 * would fail it; the next watchdog tick or status replaces it. Other errors are logged once
 * until a send works again, not on every tick. */
static void send_msg(const char *msg, size_t len)
{
    if (sd.fd < 0)
        return;
    if (sendto(sd.fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sd.addr,
               sd.addr_len) >= 0) {
        sd.warned = 0;
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || sd.warned)
        return;
    sd.warned = 1;
    log_warn("sdnotify: send to $NOTIFY_SOCKET failed: %s", strerror(errno));
}

/* @status must stay on its line: a newline would start another assignment. */
static void send_with_status(const char *head, const char *status)
{
    char buf[64 + SDNOTIFY_STATUS_MAX];
    int n;

    if (sd.fd < 0)
        return;
    n = snprintf(buf, sizeof(buf), "%sSTATUS=%.*s", head, SDNOTIFY_STATUS_MAX,
                 status ? status : "");
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    for (char *p = buf + strlen(head); *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    send_msg(buf, (size_t)n);
}

/* The loop getting here is the proof of life systemd asks for: a stuck loop stops the pings
 * and systemd restarts us (WatchdogSec=, Restart=). */
static void on_watchdog(uv_timer_t *t)
{
    static const char ping[] = "WATCHDOG=1";

    send_msg(ping, sizeof(ping) - 1);
}

/* WATCHDOG_USEC in microseconds; WATCHDOG_PID, when set, names the process it is meant for (a
 * child that inherited the environment must not ping for its parent): sd_watchdog_enabled(3).
 * Returns the ping interval in ms, half the timeout as the man page advises, or 0 for none. */
static uint64_t watchdog_interval_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    unsigned long long v;
    char *end;

    if (!usec || !*usec)
        return 0;
    if (pid && *pid) {
        errno = 0;
        v = strtoull(pid, &end, 10);
        if (errno || *end || v != (unsigned long long)getpid())
            return 0;
    }
    errno = 0;
    v = strtoull(usec, &end, 10);
    if (usec[0] == '-' || errno || *end || v == 0) {
        log_warn("sdnotify: ignoring WATCHDOG_USEC '%s': not a positive number", usec);
        return 0;
    }
    v /= 2000;
    return v ? v : 1;
}

int sdnotify_init(uv_loop_t *loop)
{
    const char *path = getenv("NOTIFY_SOCKET");
    uint64_t every_ms;

    if (sd.fd >= 0 || !path || !*path)
        return 0;
    if (parse_socket(path) != 0) {
        log_warn("sdnotify: ignoring NOTIFY_SOCKET '%s': not an absolute or '@' socket path", path);
        return 0;
    }
    /* No connect(): a datagram per sendto() keeps working if systemd re-creates the socket
     * (daemon-reexec), and a socket that is not there yet is not a startup error. */
    sd.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sd.fd < 0) {
        log_warn("sdnotify: cannot create a socket: %s", strerror(errno));
        return 0;
    }
    sd.sent_ready = sd.warned = 0;
    every_ms = watchdog_interval_ms();
    if (every_ms) {
        uv_timer_init(loop, &sd.watchdog);
        uv_timer_start(&sd.watchdog, on_watchdog, every_ms, every_ms);
        uv_unref((uv_handle_t *)&sd.watchdog); /* proof of life, not a reason to live */
        sd.has_watchdog = 1;
        log_info("sdnotify: watchdog ping every %llu ms", (unsigned long long)every_ms);
    }
    return 0;
}

void sdnotify_ready(const char *status)
{
    if (sd.fd < 0 || sd.sent_ready)
        return;
    sd.sent_ready = 1;
    send_with_status("READY=1\n", status);
}

void sdnotify_status(const char *status)
{
    send_with_status("", status);
}

void sdnotify_stopping(const char *status)
{
    send_with_status("STOPPING=1\n", status);
}

void sdnotify_close(void)
{
    if (sd.has_watchdog) {
        uv_timer_stop(&sd.watchdog);
        uv_close((uv_handle_t *)&sd.watchdog, NULL); /* static storage: nothing to free */
        sd.has_watchdog = 0;
    }
    if (sd.fd >= 0) {
        close(sd.fd);
        sd.fd = -1;
    }
}
