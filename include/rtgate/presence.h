/* presence.h: which users are online, across nodes, and how many connections each holds.
 *
 * Each node counts the connections of its users here (presence_join/leave, called by the
 * transports for authenticated SSE streams and WebSockets). The counts go to the backplane,
 * which keeps them where every node can read them (Redis: see redis_backplane.c) and expires a
 * node's entries when it stops refreshing them (a node killed with SIGKILL). With the local
 * backplane the node's own counts are the answer. No lws, no hiredis: unit-tested. */
#ifndef RTGATE_PRESENCE_H
#define RTGATE_PRESENCE_H

#include <stddef.h>

struct presence;
struct presence_req;
struct backplane;
struct hub;

#define PRESENCE_MAX_USERS 100 /* users per lookup */

/* One user's answer: @conns connections over every node, 0 when offline. */
struct presence_result {
    const char *user; /* borrowed from the lookup's arguments */
    size_t len;
    unsigned conns;
};

/* A lookup's outcome: @status 0 and @n results in the order asked, or -1 (backplane down:
 * @res is NULL). The results are borrowed for the call. */
typedef void presence_lookup_fn(void *ud, int status, const struct presence_result *res, size_t n);
/* "Is @user online?": @status 0 or -1 as above; @conns 0 means offline. */
typedef void presence_online_fn(void *ud, int status, unsigned conns);

/* Counts users of this node; stores the counts through @bp (borrowed; it must outlive the
 * presence). With @events, a user going online or offline (over all nodes) is published to
 * the topic "presence:<user>" as {"event":"join"|"leave","user":"<user>"} through @h. */
struct presence *presence_new(struct hub *h, struct backplane *bp, int events);
/* Call after the backplane is closed (its pending lookups are answered first). */
void presence_free(struct presence *p);

/* A connection of @user (a valid user id) opened / closed on this node. */
void presence_join(struct presence *p, const char *user, size_t len);
void presence_leave(struct presence *p, const char *user, size_t len);
/* This node's connections of @user. */
unsigned presence_local(const struct presence *p, const char *user, size_t len);
/* Users with connections on this node. */
size_t presence_local_users(const struct presence *p);

/* Looks up @n (1..PRESENCE_MAX_USERS) users; @users[i] is @lens[i] bytes and must stay valid
 * until @fn runs. @fn is called once, maybe before this returns (then NULL is returned);
 * otherwise the request can be withdrawn with presence_cancel() until @fn runs. */
struct presence_req *presence_lookup(struct presence *p, const char *const *users,
                                     const size_t *lens, size_t n, presence_lookup_fn *fn,
                                     void *ud);
/* One user: "is @user online" (issue 10's ephemeral messages ask this). Same rules. */
struct presence_req *presence_is_online(struct presence *p, const char *user, size_t len,
                                        presence_online_fn *fn, void *ud);
/* @fn will not be called. NULL is ignored. */
void presence_cancel(struct presence_req *r);

/* ---- backplane side ---- */

/* Calls @fn for every user with connections here (to store all counts again after a
 * reconnect, or after the backplane found this node's entries expired). */
void presence_for_each(struct presence *p,
                       void (*fn)(void *ud, const char *user, size_t len, unsigned conns),
                       void *ud);
/* @user went online (@online 1) or offline (0) over all nodes: publishes the event. */
void presence_changed(struct presence *p, const char *user, size_t len, int online);

#endif
