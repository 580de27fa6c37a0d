/* gateway.c: the loop's owner. Start-up order is hub -> backplane -> HTTP; shutdown is the
 * reverse, in the order FACTS.md measured clean under ASan with live connections: close our
 * handles, start lws's destroy, let uv_run() return, destroy lws again, close the loop. */
#include "rtgate/gateway.h"

#include "rtgate/backplane.h"
#include "rtgate/conf.h"
#include "rtgate/http_server.h"
#include "rtgate/hub.h"
#include "rtgate/log.h"
#include "rtgate/presence.h"
#include "rtgate/redis_backplane.h"
#include "rtgate/sdnotify.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void on_signal_closed(uv_handle_t *h)
{
}

/* systemd (Type=notify): READY=1 when we listen and the backplane can take publishes, then a
 * STATUS= line whenever the backplane or the number of streams changes. */
static void on_status_tick(uv_timer_t *t)
{
    struct gateway *gw = container_of(t, struct gateway, status);
    int up = gw->bp->ops->is_ready(gw->bp);
    size_t streams = http_server_streams(gw->http);
    char status[160];

    if (gw->stopping)
        return; /* STOPPING=1 said it; a status line would now only contradict it */
    if (gw->notified_ready && up == gw->last_up && streams == gw->last_streams)
        return;
    snprintf(status, sizeof(status), "listening on %s:%d, backplane %s %s, %zu streams",
             gw->cf->listen_address, http_server_port(gw->http), gw->bp->ops->name,
             up ? "up" : "down", streams);
    gw->last_up = up;
    gw->last_streams = streams;
    if (!gw->notified_ready && (up || gw->cf->ready_without_backplane)) {
        gw->notified_ready = 1;
        sdnotify_ready(status);
        uv_timer_set_repeat(t, 5000);
    } else if (gw->notified_ready) {
        sdnotify_status(status);
    }
}

static void on_drained(void *ud)
{
    struct gateway *gw = ud;

    log_notice("gateway: drained, exiting");
    sdnotify_status("drained, exiting");
    uv_timer_stop(&gw->status);
    uv_close((uv_handle_t *)&gw->status, on_signal_closed);
    sdnotify_close();
    uv_close((uv_handle_t *)&gw->sigint, on_signal_closed);
    uv_close((uv_handle_t *)&gw->sigterm, on_signal_closed);
    uv_close((uv_handle_t *)&gw->sighup, on_signal_closed);
    http_server_close(gw->http);
    backplane_close(gw->bp); /* its connections and timers would keep the loop running */
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct gateway *gw = s->data;

    if (gw->stopping) {
        log_notice("gateway: %s again, already draining", strsignal(signum));
        return;
    }
    gw->stopping = 1;
    sdnotify_stopping(signum == SIGINT ? "stopping at once (SIGINT)" : "draining (SIGTERM)");
    log_notice("gateway: %s, draining (deadline %u ms)", strsignal(signum),
               gw->cf->shutdown_timeout_ms);
    http_server_drain(gw->http, signum == SIGINT, on_drained, gw);
}

static void warn_restart(const char *key)
{
    log_warn("gateway: reload: %s changed; it takes effect at the next restart", key);
}

void gateway_reload(struct gateway *gw)
{
    struct conf next;
    char err[512];

    conf_init(&next);
    if (conf_load(&next, gw->cf->path, err, sizeof(err)) != 0) {
        log_err("gateway: reload refused, running config kept: %s", err);
        conf_release(&next);
        return;
    }
    conf_keep_startup(&next, gw->cf, warn_restart);
    /* swap in place: every module holds a pointer to *gw->cf and reads it at each use */
    {
        struct conf old = *gw->cf;

        *gw->cf = next;
        conf_release(&old);
    }
    log_set_level((enum log_level)gw->cf->log_level);
    log_set_format((enum log_format)gw->cf->log_format);
    log_set_repeat_limit(gw->cf->log_repeat_limit_per_s);
    log_notice("gateway: reloaded '%s'", gw->cf->path);
    if (http_server_reload_tls(gw->http, err, sizeof(err)) != 0)
        log_err("gateway: TLS certificate not reloaded, the old one stays: %s", err);
    else if (gw->cf->tls_cert_file)
        log_notice("gateway: TLS certificate reloaded");
    sdnotify_status("configuration reloaded");
}

static void on_sighup(uv_signal_t *s, int signum)
{
    struct gateway *gw = s->data;

    if (!gw->stopping)
        gateway_reload(gw);
}

int gateway_start(struct gateway *gw, struct conf *cf, char *err, size_t errlen)
{
    memset(gw, 0, sizeof(*gw));
    gw->cf = cf;
    if (uv_loop_init(&gw->loop) != 0) {
        snprintf(err, errlen, "gateway: cannot init event loop");
        return -1;
    }
    if (strncmp(cf->backplane_type, "redis", 5) == 0) { /* "redis", "redis-cluster" */
        gw->hub = hub_new(0);                           /* history lives in Redis streams */
        gw->bp = redis_backplane_new(&gw->loop, cf, gw->hub, err, errlen);
        if (!gw->bp) {
            hub_free(gw->hub);
            uv_loop_close(&gw->loop);
            return -1;
        }
    } else {
        gw->hub = hub_new(cf->history_size);
        gw->bp = backplane_local_new(gw->hub);
    }
    hub_set_backplane(gw->hub, gw->bp);
    if (cf->presence_enabled && strcmp(cf->backplane_type, "redis-cluster") == 0)
        log_warn("gateway: presence is not available with a redis-cluster backplane yet: "
                 "GET /v1/presence answers 404");
    else if (cf->presence_enabled)
        gw->presence = presence_new(gw->hub, gw->bp, cf->presence_events);
    gw->http = http_server_new(&gw->loop, cf, gw->hub, gw->bp, err, errlen);
    if (!gw->http)
        goto free_hub;
    http_server_set_presence(gw->http, gw->presence);
    uv_signal_init(&gw->loop, &gw->sigint);
    uv_signal_init(&gw->loop, &gw->sigterm);
    uv_signal_init(&gw->loop, &gw->sighup);
    gw->sigint.data = gw->sigterm.data = gw->sighup.data = gw;
    uv_signal_start(&gw->sigint, on_signal, SIGINT);
    uv_signal_start(&gw->sigterm, on_signal, SIGTERM);
    uv_signal_start(&gw->sighup, on_sighup, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    sdnotify_init(&gw->loop);
    uv_timer_init(&gw->loop, &gw->status);
    uv_timer_start(&gw->status, on_status_tick, 0, 50); /* 50 ms until ready, then 5 s */
    log_notice("gateway: listening on %s://%s:%d (backplane %s, rtgate %s)",
               cf->tls_cert_file ? "https" : "http", cf->listen_address, http_server_port(gw->http),
               gw->bp->ops->name, RTGATE_VERSION);
    return 0;

free_hub:
    backplane_close(gw->bp);
    hub_free(gw->hub);
    presence_free(gw->presence);
    backplane_free(gw->bp);
    uv_run(&gw->loop, UV_RUN_NOWAIT);
    uv_loop_close(&gw->loop);
    return -1;
}

void gateway_run(struct gateway *gw)
{
    uv_run(&gw->loop, UV_RUN_DEFAULT);
}

void gateway_release(struct gateway *gw)
{
    http_server_free(gw->http);
    backplane_close(gw->bp);
    uv_run(&gw->loop, UV_RUN_NOWAIT);
    /* the hub cancels its pending reads through the backplane: free it first */
    hub_free(gw->hub);
    presence_free(gw->presence);
    backplane_free(gw->bp);
    uv_run(&gw->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&gw->loop) != 0)
        log_warn("gateway: event loop closed with handles still open");
}
