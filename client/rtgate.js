// rtgate.js: the browser client of rtgate. One ordered stream of messages per topic over the
// best transport that works (WebSocket, then Server-Sent Events, then long-polling, then
// polling), with fallback, periodic upgrade attempts, reconnects with capped exponential
// backoff and full jitter, and resume from one cursor per topic that every transport accepts.
// No dependencies; served by the gateway at /v1/client.js (ES module) and /v1/client.global.js
// (classic script: window.RTGate). See README "Browser client".

const ALL = ['websocket', 'sse', 'longpoll', 'poll'];

const DEFAULTS = {
  transports: ALL,        // tried in this order; a subset forces a transport
  connectTimeoutMs: 6000, // a WebSocket or SSE stream that is not open by then has failed
  pingMs: 15000,          // WebSocket: our ping when the socket has been quiet this long
  stallMs: 0,             // silence that means a stall (0: from the gateway's heartbeat)
  upgradeMs: 60000,       // on a fallback transport: try the better ones this often
  backoffMinMs: 500,
  backoffMaxMs: 15000,
  pollMs: 2000,           // simple polling interval
  longpollTimeoutS: 25,
};

// ---- cursors ----------------------------------------------------------------------------
// The gateway's cursor is base64url of "r1|<topic>|<epoch>|<id>[|<topic>|<epoch>|<id>]..."
// (include/rtgate/cursor.h). The client keeps one "<topic>|<epoch>|<id>" per topic, so a
// cursor from any transport updates the topics it names, and a stream of several topics gets
// one cursor joining them.

function b64urlDecode(s) {
  const b = s.replace(/-/g, '+').replace(/_/g, '/');
  return atob(b + '==='.slice((b.length + 3) % 4));
}

function b64urlEncode(s) {
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function splitCursor(text) {
  const out = new Map();
  let raw;
  try {
    raw = b64urlDecode(text);
  } catch {
    return out;
  }
  if (!raw.startsWith('r1|')) return out;
  const f = raw.slice(3).split('|');
  for (let i = 0; i + 2 < f.length; i += 3) out.set(f[i], `${f[i]}|${f[i + 1]}|${f[i + 2]}`);
  return out;
}

export function joinCursor(parts) {
  const list = parts.filter(Boolean);
  return list.length ? b64urlEncode('r1|' + list.join('|')) : '';
}

// Message ids are "<ms>-<seq>": compared as numbers, never as strings.
export function compareIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

// ---- the client -------------------------------------------------------------------------

export class Client {
  constructor(url, opts = {}) {
    this.url = url.replace(/\/+$/, '');
    this.opts = { ...DEFAULTS, ...opts };
    const g = globalThis;
    this.env = {
      WebSocket: g.WebSocket, EventSource: g.EventSource, fetch: g.fetch && g.fetch.bind(g),
      setTimeout: g.setTimeout.bind(g), clearTimeout: g.clearTimeout.bind(g),
      random: Math.random, now: Date.now, ...(opts.env || {}),
    };
    this.order = this.opts.transports.filter((t) => ALL.includes(t));
    if (!this.order.length) throw new Error('rtgate: no usable transport in options.transports');
    this.topics = new Map();   // topic -> { handlers: Set, pos: "topic|epoch|id" | '', last: id | '' }
    this.listeners = new Map();
    this.token = opts.token || '';
    this.cur = null;           // the open (or opening) transport
    this.probe = null;         // a better transport being tried while cur works
    this.index = 0;            // position of cur in order
    this.failures = 0;         // consecutive failed attempts (backoff exponent)
    this.timers = new Set();
    this.stopped = true;
    this.transport = null;     // name of the connected transport, or null
    this.lastNode = null;
    this.rid = 0;
    this.pendingAcks = new Map();
  }

  // ---- public API ----

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
    return this;
  }

  subscribe(topic, handler, { cursor } = {}) {
    let t = this.topics.get(topic);
    const fresh = !t;
    if (!t) {
      t = { handlers: new Set(), pos: '', last: '' };
      this.topics.set(topic, t);
    }
    if (cursor) t.pos = splitCursor(cursor).get(topic) || t.pos;
    if (handler) t.handlers.add(handler);
    if (fresh && !this.stopped) this.topicsChanged();
    return () => this.unsubscribe(topic, handler);
  }

  unsubscribe(topic, handler) {
    const t = this.topics.get(topic);
    if (!t) return;
    if (handler) t.handlers.delete(handler);
    if (handler && t.handlers.size) return;
    this.topics.delete(topic);
    if (!this.stopped) this.topicsChanged(topic);
  }

  // The gateway node now serving us (a poll may land on another node than the last one).
  get node() {
    return (this.transport && this.cur && this.cur.node) || this.lastNode;
  }

  // The cursor that resumes @topic just after the last message delivered (opaque; store it).
  cursor(topic) {
    return joinCursor([this.topics.get(topic)?.pos]);
  }

  // {ephemeral: true}: live only (never stored, refused with "recipient offline" when no one
  // is subscribed), as WebRTC signaling needs (README "WebRTC").
  send(user, data, { ephemeral = false } = {}) {
    const e = ephemeral ? { ephemeral: true } : {};
    return this.write({ type: 'send', to: user, ...e, data }, { to: user, ...e, data });
  }

  publish(topic, data, { ephemeral = false } = {}) {
    const e = ephemeral ? { ephemeral: true } : {};
    return this.write({ type: 'publish', topic, ...e, data }, { topic, ...e, data });
  }

  start() {
    if (!this.stopped) return this;
    this.stopped = false;
    this.index = 0;
    this.open(0, 0);
    return this;
  }

  close() {
    this.stopped = true;
    for (const t of this.timers) this.env.clearTimeout(t);
    this.timers.clear();
    this.drop(this.probe);
    this.probe = null;
    const was = this.transport;
    this.drop(this.cur);
    this.cur = null;
    this.transport = null;
    if (was) this.emit('disconnected', { transport: was, reason: 'closed by the application' });
  }

  // ---- plumbing ----

  emit(event, arg) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(arg);
      } catch (e) {
        setTimeout(() => { throw e; }, 0); // an application bug must not break the client
      }
    }
  }

  later(ms, fn) {
    const t = this.env.setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  cancel(t) {
    if (t === undefined || t === null) return;
    this.env.clearTimeout(t);
    this.timers.delete(t);
  }

  // Full jitter: a uniform delay in [0, min(max, min * 2^failures)).
  backoff() {
    const cap = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(this.failures, 20));
    return Math.floor(this.env.random() * cap);
  }

  async getToken(fresh) {
    if (this.opts.getToken && (fresh || !this.token)) this.token = await this.opts.getToken();
    return this.token;
  }

  // Positions of every topic, joined, for SSE and polling.
  joined() {
    return joinCursor([...this.topics.values()].map((t) => t.pos));
  }

  advance(cursor) {
    if (!cursor) return;
    for (const [topic, pos] of splitCursor(cursor)) {
      const t = this.topics.get(topic);
      if (t) t.pos = pos;
    }
  }

  // Every transport (@tr) ends up here: drop what was already delivered, then hand it over.
  deliver(m, cursor, tr) {
    const t = this.topics.get(m.topic);
    if (!t) return;
    if (m.ephemeral) {
      // live only: no id and no cursor, outside the sequence (no dedupe, no position); taken
      // from the current transport alone, so the overlap of an upgrade never shows it twice
      if (tr && tr !== this.cur) return;
      return this.hand(t, { topic: m.topic, from: m.from, ts: m.ts, data: m.data, ephemeral: true });
    }
    if (typeof m.id !== 'string') return; // not an envelope
    if (t.last && compareIds(m.id, t.last) <= 0) return; // seen (a resume overlap, a probe)
    t.last = m.id;
    if (cursor) this.advance(cursor);
    this.hand(t, { id: m.id, topic: m.topic, from: m.from, ts: m.ts, data: m.data });
  }

  hand(t, msg) {
    for (const h of t.handlers) {
      try {
        h(msg);
      } catch (e) {
        setTimeout(() => { throw e; }, 0);
      }
    }
    this.emit('message', msg);
  }

  reset(topic) {
    const t = this.topics.get(topic);
    if (!t) return;
    t.last = ''; // a new history: ids start again from what it holds
    this.emit('reset', { topic });
  }

  // ---- transports ----

  make(name) {
    const T = { websocket: WsTransport, sse: SseTransport, longpoll: PollTransport, poll: PollTransport }[name];
    return new T(this, name);
  }

  open(index, delay) {
    this.cancel(this.retryTimer);
    this.retryTimer = this.later(delay, () => {
      if (this.stopped) return;
      this.index = index;
      const tr = this.make(this.order[index]);
      this.cur = tr;
      tr.start();
    });
  }

  // Called by a transport: it is open and delivering.
  opened(tr) {
    if (this.stopped) return;
    if (tr === this.probe) {
      // a better transport works: switch to it; the old one's overlap is de-duplicated
      const old = this.cur;
      this.probe = null;
      this.cur = tr;
      this.index = this.order.indexOf(tr.name);
      this.drop(old);
    } else if (tr !== this.cur) {
      return;
    }
    this.failures = 0;
    this.transport = tr.name;
    this.lastNode = tr.node || this.lastNode;
    this.emit('connected', { transport: tr.name, node: tr.node || null });
    this.scheduleUpgrade();
  }

  // Called by a transport that will deliver no more. @wasOpen: it had worked; @stalled: it
  // went quiet. One that never opened or stalled is abandoned for the next in order.
  failed(tr, reason, { wasOpen = false, stalled = false } = {}) {
    if (this.stopped) return;
    this.drop(tr);
    if (tr === this.probe) {
      this.probe = null;
      const next = this.order.indexOf(tr.name) + 1;
      if (next < this.index) this.tryUpgrade(next);
      else this.scheduleUpgrade();
      return;
    }
    if (tr !== this.cur) return;
    this.cur = null;
    this.cancel(this.upgradeTimer);
    if (this.transport) {
      this.emit('disconnected', { transport: this.transport, reason });
      this.transport = null;
    }
    let next = this.index;
    if (!wasOpen || stalled) next++;
    if (next >= this.order.length) next = 0;
    // a transport that had worked gets one quick retry; a whole round of failures backs off
    this.failures++;
    this.open(next, wasOpen && !stalled && this.failures === 1 ? Math.min(this.backoff(), 250) : this.backoff());
  }

  drop(tr) {
    if (tr) tr.stop();
  }

  scheduleUpgrade() {
    this.cancel(this.upgradeTimer);
    if (this.index === 0 || !this.opts.upgradeMs) return;
    this.upgradeTimer = this.later(this.opts.upgradeMs, () => this.tryUpgrade(0));
  }

  tryUpgrade(index) {
    if (this.stopped || this.probe || !this.cur || index >= this.index) return;
    this.probe = this.make(this.order[index]);
    this.probe.start();
  }

  topicsChanged(removed) {
    for (const tr of [this.cur, this.probe]) if (tr) tr.topicsChanged(removed);
  }

  write(frame, body) {
    const tr = this.cur;
    if (tr && tr.name === 'websocket' && tr.isOpen()) return tr.request(frame);
    return this.post(body);
  }

  async post(body, retried = false) {
    const token = await this.getToken(false);
    const res = await this.env.fetch(this.url + '/v1/messages', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const j = await res.json().catch(() => ({}));
    if (res.status === 401 && this.opts.getToken && !retried) {
      await this.getToken(true);
      return this.post(body, true);
    }
    if (!res.ok) {
      const err = new Error(j.error || `HTTP ${res.status}`);
      err.status = res.status;
      if (!quietError(body, err.message)) this.emit('error', { error: err.message, status: res.status });
      throw err;
    }
    return j; // {id, topic} or {topic, ephemeral: true}
  }
}

// An ephemeral send to nobody is an answer the caller handles (its promise is rejected), not an
// error of the connection: no `error` event for it.
function quietError(req, error) {
  return !!(req && req.ephemeral) && error === 'recipient offline';
}

// Shared by the transports: topics, query strings, timers.
class Base {
  constructor(client, name) {
    this.c = client;
    this.name = name;
    this.stopped = false;
    this.open = false;
    this.node = null;
  }

  isOpen() {
    return this.open && !this.stopped;
  }

  topicList() {
    return [...this.c.topics.keys()].join(',');
  }

  fail(reason, flags = {}) {
    if (this.stopped) return;
    this.stop();
    this.c.failed(this, reason, { wasOpen: this.open, ...flags });
  }

  ready() {
    if (this.stopped || this.open) return;
    this.open = true;
    this.c.opened(this);
  }

  // (Re)arms the stall timer: nothing at all for @ms means the path is dead.
  alive(ms) {
    this.c.cancel(this.stallTimer);
    if (this.stopped || !ms) return;
    this.stallTimer = this.c.later(ms, () => this.fail('stalled: no heartbeat', { stalled: true }));
  }

  stop() {
    this.stopped = true;
    this.c.cancel(this.stallTimer);
    this.c.cancel(this.connectTimer);
  }
}

class WsTransport extends Base {
  start() {
    this.c.getToken(false).then((token) => {
      if (this.stopped) return;
      const u = this.c.url.replace(/^http/, 'ws') + '/v1/ws?token=' + encodeURIComponent(token);
      let ws;
      try {
        ws = new this.c.env.WebSocket(u);
      } catch (e) {
        return this.fail(String(e && e.message));
      }
      this.ws = ws;
      this.connectTimer = this.c.later(this.c.opts.connectTimeoutMs, () => this.fail('connect timeout'));
      this.acks = new Map();
      ws.onopen = () => this.onOpen();
      ws.onmessage = (e) => this.onFrame(e.data);
      ws.onerror = () => {};
      ws.onclose = (e) => this.fail(`websocket closed (${e.code}${e.reason ? ' ' + e.reason : ''})`);
    }, (e) => this.fail('getToken failed: ' + e));
  }

  stallMs() {
    return this.c.opts.stallMs || this.c.opts.pingMs * 2 + 5000;
  }

  onOpen() {
    if (this.stopped) return;
    // the first ping's pong names the node; subscriptions follow (their acks end the connect)
    this.sendFrame({ type: 'hello', rid: 'hello' });
    this.waiting = 0;
    this.known = new Set();
    for (const topic of this.c.topics.keys()) this.sub(topic, 's:');
    this.pinger();
    this.alive(this.stallMs());
    if (!this.waiting) this.maybeReady();
  }

  // 's:' subscriptions hold the connect until their ack; 'n:' ones come later
  sub(topic, kind) {
    const t = this.c.topics.get(topic);
    const frame = { type: 'subscribe', topic, rid: kind + topic };
    if (t && t.pos) frame.cursor = joinCursor([t.pos]);
    this.known.add(topic);
    if (kind === 's:') this.waiting++;
    this.sendFrame(frame);
  }

  maybeReady() {
    if (this.gotHello && this.waiting <= 0) {
      this.c.cancel(this.connectTimer);
      this.ready();
    }
  }

  pinger() {
    this.c.cancel(this.pingTimer);
    this.pingTimer = this.c.later(this.c.opts.pingMs, () => {
      if (this.stopped) return;
      this.sendFrame({ type: 'ping' });
      this.pinger();
    });
  }

  sendFrame(f) {
    try {
      this.ws.send(JSON.stringify(f));
    } catch {
      /* closing: onclose follows */
    }
  }

  request(frame) {
    const rid = 'r' + ++this.c.rid;
    return new Promise((resolve, reject) => {
      this.acks.set(rid, { resolve, reject, frame });
      this.sendFrame({ ...frame, rid });
    });
  }

  onFrame(text) {
    if (this.stopped) return;
    this.alive(this.stallMs());
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    const rid = typeof f.rid === 'string' ? f.rid : '';
    switch (f.type) {
      case 'message':
        this.c.deliver(f, f.cursor, this);
        break;
      case 'reset':
        this.c.reset(f.topic);
        break;
      case 'hello':
        this.node = f.node || null;
        this.gotHello = true;
        this.maybeReady();
        break;
      case 'refresh':
        this.c.getToken(true).then((token) => this.sendFrame({ type: 'refresh', token }), () => {});
        break;
      case 'ack':
        if (rid.startsWith('s:') || rid.startsWith('n:')) {
          this.c.advance(f.cursor); // after the replay: everything up to it was delivered
          if (rid.startsWith('s:')) this.waiting--;
          this.maybeReady();
        } else if (this.acks.has(rid)) {
          this.acks.get(rid).resolve(f.ephemeral ? { topic: f.topic, ephemeral: true } : { id: f.id, topic: f.topic });
          this.acks.delete(rid);
        }
        break;
      case 'error':
        if (rid === 'hello') {
          // a gateway from before "hello": connected all the same, without a node name
          this.gotHello = true;
          this.maybeReady();
          break;
        }
        if (this.acks.has(rid)) {
          const { reject, frame } = this.acks.get(rid);
          this.acks.delete(rid);
          reject(new Error(f.error));
          if (quietError(frame, f.error)) break;
        } else if (rid.startsWith('s:')) {
          this.waiting--;
          this.maybeReady();
        }
        this.c.emit('error', { error: f.error, topic: /^[sn]:/.test(rid) ? rid.slice(2) : undefined });
        break;
    }
  }

  topicsChanged(removed) {
    if (!this.known) return; // not open yet: onOpen subscribes to every topic
    if (removed) {
      this.known.delete(removed);
      this.sendFrame({ type: 'unsubscribe', topic: removed });
      return;
    }
    for (const topic of this.c.topics.keys()) if (!this.known.has(topic)) this.sub(topic, 'n:');
  }

  stop() {
    super.stop();
    this.c.cancel(this.pingTimer);
    for (const { reject } of this.acks?.values() || []) reject(new Error('connection closed'));
    this.acks?.clear();
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      try {
        this.ws.close();
      } catch {
        /* already closed */
      }
    }
  }
}

class SseTransport extends Base {
  async start() {
    try {
      const token = await this.c.getToken(false);
      if (this.stopped) return;
      // topics without a position get "now" first, so nothing published while the stream
      // opens is missed (an SSE stream tells its position only with its first event)
      const unknown = [...this.c.topics].filter(([, t]) => !t.pos).map(([k]) => k);
      if (unknown.length) {
        const q = new URLSearchParams({ topics: unknown.join(',') });
        const res = await this.c.env.fetch(`${this.c.url}/v1/poll?${q}`, { headers: { authorization: `Bearer ${token}` } });
        if (!res.ok) return this.fail(`poll for positions: HTTP ${res.status}`);
        this.c.advance((await res.json()).cursor);
      }
      if (this.stopped) return;
      const q = new URLSearchParams({ topics: this.topicList(), hello: '1', token });
      const cur = this.c.joined();
      if (cur) q.set('cursor', cur);
      const es = new this.c.env.EventSource(`${this.c.url}/v1/sse?${q}`);
      this.es = es;
      this.connectTimer = this.c.later(this.c.opts.connectTimeoutMs, () => this.fail('connect timeout'));
      es.onerror = () => this.fail('event stream ended');
      es.onmessage = (e) => {
        this.beat();
        let m;
        try {
          m = JSON.parse(e.data);
        } catch {
          return;
        }
        this.c.deliver(m, e.lastEventId, this); // an ephemeral event has no id: line
      };
      es.addEventListener('hello', (e) => {
        let h = {};
        try {
          h = JSON.parse(e.data);
        } catch {
          /* keep defaults */
        }
        this.node = h.node || null;
        this.hbMs = h.heartbeat_ms || 15000;
        this.c.cancel(this.connectTimer);
        this.beat();
        this.ready();
      });
      es.addEventListener('hb', () => this.beat());
      es.addEventListener('reset', (e) => {
        this.beat();
        try {
          this.c.reset(JSON.parse(e.data).topic);
        } catch {
          /* malformed: ignore */
        }
      });
      es.addEventListener('expired', () => {
        this.c.getToken(true).then(() => this.fail('token expired'), () => this.fail('token expired'));
      });
    } catch (e) {
      this.fail(String(e && e.message));
    }
  }

  beat() {
    this.alive(this.c.opts.stallMs || (this.hbMs || 15000) * 2 + 5000);
  }

  topicsChanged() {
    // a stream's topics are fixed: reopen it, resuming every topic from its cursor
    if (this.open) this.fail('topics changed', { wasOpen: true });
  }

  stop() {
    super.stop();
    if (this.es) {
      this.es.onerror = this.es.onmessage = null;
      this.es.close();
    }
  }
}

// Long-polling (held requests) and simple polling (one request every pollMs).
class PollTransport extends Base {
  start() {
    this.loop();
  }

  async loop() {
    const hold = this.name === 'longpoll';
    let refreshed = false;
    while (!this.stopped) {
      if (!this.c.topics.size) {
        // nothing to read: a cheap health check stands in for the first answer
        this.ready();
        await new Promise((r) => (this.wake = r, this.sleeper = this.c.later(this.c.opts.pollMs, r)));
        continue;
      }
      let token;
      try {
        token = await this.c.getToken(false);
      } catch (e) {
        return this.fail('getToken failed: ' + e);
      }
      const q = new URLSearchParams({ topics: this.topicList() });
      const cur = this.c.joined();
      if (cur) q.set('cursor', cur);
      // the first request, and one for a topic without a position, is a quick poll: it shows
      // the path works (and gets "now") at once, where a held request says nothing until
      // a message or its timeout
      const held = hold && this.open && [...this.c.topics.values()].every((t) => t.pos);
      if (held) q.set('timeout', String(this.c.opts.longpollTimeoutS));
      this.again = false;
      const ctl = typeof AbortController === 'function' ? new AbortController() : null;
      this.ctl = ctl;
      const limit = held ? this.c.opts.longpollTimeoutS * 1000 + 15000 : this.c.opts.connectTimeoutMs + 4000;
      const timer = this.c.later(limit, () => ctl && ctl.abort());
      let res, body;
      try {
        const headers = { authorization: `Bearer ${token}` };
        if (!hold && this.etag) headers['if-none-match'] = this.etag;
        res = await this.c.env.fetch(`${this.c.url}/v1/${held ? 'longpoll' : 'poll'}?${q}`, { headers, signal: ctl?.signal });
        body = res.status === 304 ? null : await res.json();
      } catch (e) {
        this.c.cancel(timer);
        if (this.stopped) return;
        if (this.again) {
          this.again = false; // aborted for a new set of topics
          continue;
        }
        const aborted = !!(ctl && ctl.signal.aborted);
        return this.fail(aborted ? 'request timed out' : 'request failed', { stalled: aborted });
      }
      this.c.cancel(timer);
      if (this.stopped) return;
      if (res.status === 401 && this.c.opts.getToken && !refreshed) {
        refreshed = true;
        try {
          await this.c.getToken(true);
        } catch {
          /* fails below */
        }
        continue;
      }
      refreshed = false;
      if (res.status !== 200 && res.status !== 304) {
        if (res.status >= 400 && res.status < 500 && body && body.error)
          this.c.emit('error', { error: body.error, status: res.status });
        return this.fail(`HTTP ${res.status}`);
      }
      if (body) {
        this.node = res.headers.get('x-rtgate-node') || this.node;
        if (!hold) this.etag = res.headers.get('etag') || '';
        this.ready();
        if (body.recovered === false) for (const topic of body.reset || []) this.c.reset(topic);
        for (const m of body.messages) this.c.deliver(m, null, this); // held: ephemeral too
        this.c.advance(body.cursor);
      } else {
        this.ready();
      }
      if (!hold) await new Promise((r) => (this.wake = r, this.sleeper = this.c.later(this.c.opts.pollMs, r)));
    }
  }

  topicsChanged() {
    // ask again at once with the new set of topics
    this.again = true;
    if (this.ctl) this.ctl.abort();
    this.c.cancel(this.sleeper);
    if (this.wake) this.wake();
  }

  stop() {
    super.stop();
    this.c.cancel(this.sleeper);
    if (this.ctl) this.ctl.abort();
    if (this.wake) this.wake();
  }
}

// connect(url, {token | getToken, transports, ...}): starts a client; subscribe and listen on it.
export function connect(url, opts = {}) {
  return new Client(url, opts).start();
}

export default { connect, Client };
