/* sdnotify.h: tells systemd (Type=notify) when rtgate is ready, what it is doing and that it is
 * stopping, and keeps its watchdog fed from the loop. Written by hand after sd_notify(3): no
 * libsystemd. Without $NOTIFY_SOCKET every call is a no-op, so callers never check. One
 * instance per process (the environment is per process too). */
#ifndef RTGATE_SDNOTIFY_H
#define RTGATE_SDNOTIFY_H

typedef struct uv_loop_s uv_loop_t;

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and opens the socket. If the watchdog
 * is on (and meant for this pid), a timer on @loop (borrowed) sends "WATCHDOG=1" every
 * WATCHDOG_USEC/2; the timer is unref'd, so it never keeps the loop alive by itself, but it must
 * still be closed with sdnotify_close() before uv_loop_close(). Returns 0, also when not run
 * by systemd or when the variables are unusable (that is logged, not fatal). */
int sdnotify_init(uv_loop_t *loop);

/* Sends "READY=1\nSTATUS=@status". Only the first call sends: later ones do nothing, so it may
 * be called from a check that runs more than once. A newline in @status becomes a space. */
void sdnotify_ready(const char *status);

/* Sends "STATUS=@status" (shown by systemctl status). */
void sdnotify_status(const char *status);

/* Sends "STOPPING=1\nSTATUS=@status": systemd then waits for the exit (TimeoutStopSec). */
void sdnotify_stopping(const char *status);

/* Stops and closes the watchdog timer (uv_close: let the loop run once more) and the socket;
 * later calls of the functions above do nothing. Safe when not under systemd, safe twice. */
void sdnotify_close(void);

#endif
