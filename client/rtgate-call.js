// rtgate-call.js: WebRTC calls between rtgate users, with rtgate as the signaling server.
//
// Offers, answers, ICE candidates and hang-ups travel as *ephemeral* messages to the peer's
// inbox user:<peer> (README "WebRTC"): delivered live, never stored, refused when the peer is
// offline, so a stale offer is never replayed to someone who reconnects later. ICE servers
// (STUN, and TURN with short-lived credentials) come from GET /v1/ice. No dependencies.
//
//   const phone = new RTGatePhone({ url: 'https://rtgate.example.com', token });
//   await phone.connect();                          // WebSocket /v1/ws, subscribes user:<me>
//   phone.addEventListener('incoming', (e) => e.detail.accept({ stream }));
//   const call = await phone.call('bob', { stream }); // rejects with "recipient offline"
//   call.addEventListener('open', () => call.send('hi'));          // the DataChannel
//   call.addEventListener('track', (e) => (video.srcObject = e.detail.streams[0]));
//
// Or on the page's rtgate.js client, whatever transport it is on (WebSocket, SSE, long-poll):
//
//   const rt = connect(url, { getToken });            // rtgate.js (/v1/client.js)
//   const phone = new RTGatePhone({ client: rt });    // ClientSignaling: signals through rt
//   await phone.connect();                            // subscribes user:<me> on rt
//
// Without `client` it signals over a plain WebSocket of its own (WsSignaling). Any object with
// connect(), send(to, data) -> Promise, onSignal(fn) and close() can be passed as `signaling`.

export const SIGNAL_TYPES = ['offer', 'answer', 'candidate', 'hangup'];

function tokenSub(token) {
  try {
    const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(p + '==='.slice((p.length + 3) % 4))).sub;
  } catch {
    return undefined;
  }
}

function randomId() {
  const b = new Uint8Array(9);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// Signaling over a WebSocket of its own: {"type":"send","to":..,"ephemeral":true,"data":..}
// with a rid; the ack or error with that rid settles the promise.
export class WsSignaling {
  constructor({ url, token, user, WebSocketImpl = globalThis.WebSocket }) {
    this.url = url.replace(/\/+$/, '');
    this.token = token;
    this.user = user;
    this.WebSocketImpl = WebSocketImpl;
    this.rid = 0;
    this.waiting = new Map();
    this.handlers = [];
    this.ws = null;
  }

  connect() {
    const wsUrl = this.url.replace(/^http/, 'ws') + '/v1/ws?token=' + encodeURIComponent(this.token);
    const ws = new this.WebSocketImpl(wsUrl);
    this.ws = ws;
    ws.onmessage = (e) => this.onFrame(JSON.parse(e.data));
    ws.onclose = (e) => {
      for (const { reject } of this.waiting.values()) reject(new Error(`connection closed (${e.code})`));
      this.waiting.clear();
      this.handlers.forEach((fn) => fn(null, { closed: e.code }));
    };
    return new Promise((resolve, reject) => {
      ws.onerror = () => reject(new Error('WebSocket to rtgate failed'));
      ws.onopen = () => {
        // our inbox: signaling for us arrives here (and makes us "online" to callers)
        this.request({ type: 'subscribe', topic: `user:${this.user}` }).then(resolve, reject);
      };
    });
  }

  request(frame) {
    const rid = ++this.rid;
    return new Promise((resolve, reject) => {
      this.waiting.set(rid, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, rid }));
    });
  }

  onFrame(f) {
    if (f.rid !== undefined && (f.type === 'ack' || f.type === 'error') && this.waiting.has(f.rid)) {
      const w = this.waiting.get(f.rid);
      this.waiting.delete(f.rid);
      if (f.type === 'ack') w.resolve(f);
      else w.reject(new Error(f.error));
      return;
    }
    if (f.type === 'message' && f.ephemeral && f.topic === `user:${this.user}`)
      this.handlers.forEach((fn) => fn(f));
  }

  // Sends @data to @to's inbox, ephemeral. Resolves on the gateway's ack; rejects with its
  // error ("recipient offline", "rate limited", ...).
  send(to, data) {
    return this.request({ type: 'send', to, ephemeral: true, data });
  }

  onSignal(fn) {
    this.handlers.push(fn);
  }

  close() {
    if (this.ws) this.ws.close();
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const offline = (e) => /recipient offline/.test(String(e && e.message));

// Signaling through an rtgate.js Client: sends are client.send(peer, data, {ephemeral: true})
// (over its WebSocket, else POST /v1/messages); signals arrive on the client's subscription to
// user:<me>. The client stays the application's (close() leaves it running).
export class ClientSignaling {
  // offlineGraceMs: a send refused with "recipient offline" is tried again for this long (a
  // peer on long-polling is unreachable for a moment between two held requests).
  constructor({ client, user, readyTimeoutMs = 15000, offlineGraceMs = 1500 }) {
    this.client = client;
    this.user = user;
    this.readyTimeoutMs = readyTimeoutMs;
    this.offlineGraceMs = offlineGraceMs;
    this.handlers = [];
  }

  token() {
    return this.client.getToken(false);
  }

  // Subscribes user:<me> and resolves once the gateway says we are reachable: an ephemeral
  // send to ourselves is refused ("recipient offline") until our inbox subscription is live.
  async connect() {
    const token = await this.token();
    this.user = this.user || tokenSub(token);
    if (!this.user) throw new Error('no user: pass user, or a token whose sub names it');
    const inbox = `user:${this.user}`;
    this.unsub = this.client.subscribe(inbox, (m) => {
      if (m.ephemeral) for (const fn of this.handlers) fn(m);
    });
    this.onConn = (info) => this.handlers.forEach((fn) => fn(null, { online: true, ...info }));
    this.onDisc = (info) => this.handlers.forEach((fn) => fn(null, info));
    this.client.on('connected', this.onConn).on('disconnected', this.onDisc);
    if (this.client.stopped) this.client.start();
    const end = Date.now() + this.readyTimeoutMs;
    for (;;) {
      try {
        if (this.client.transport) return await this.client.send(this.user, { type: 'reachable' }, { ephemeral: true });
      } catch (e) {
        if (Date.now() > end) throw e;
      }
      if (Date.now() > end) throw new Error(`not reachable on ${inbox} within ${this.readyTimeoutMs} ms`);
      await sleep(200);
    }
  }

  async send(to, data) {
    const end = Date.now() + this.offlineGraceMs;
    for (;;) {
      try {
        return await this.client.send(to, data, { ephemeral: true });
      } catch (e) {
        if (!offline(e) || Date.now() > end) throw e;
        await sleep(150);
      }
    }
  }

  onSignal(fn) {
    this.handlers.push(fn);
  }

  close() {
    this.client.off('connected', this.onConn).off('disconnected', this.onDisc);
    this.handlers = [];
    if (this.unsub) this.unsub();
  }
}

export class RTGateCall extends EventTarget {
  constructor(phone, peer, id, direction) {
    super();
    this.phone = phone;
    this.peer = peer;
    this.id = id;
    this.direction = direction; // 'outgoing' | 'incoming'
    this.pc = null;
    this.channel = null;
    this.offer = null; // incoming: the offer, until accepted
    this.early = []; // candidates that came before the remote description
    this.outbox = []; // ours, held until the offer or answer has gone out (the peer needs it first)
    this.described = false;
    this.ended = false;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async setup(stream) {
    const ice = await this.phone.iceConfig();
    const pc = new RTCPeerConnection(ice);
    this.pc = pc;
    pc.onicecandidate = (e) => {
      if (!e.candidate || this.ended) return;
      if (this.described) this.sendCandidate(e.candidate.toJSON());
      else this.outbox.push(e.candidate.toJSON());
    };
    pc.onicecandidateerror = (e) => this.emit('iceerror', { code: e.errorCode, text: e.errorText, url: e.url });
    pc.onconnectionstatechange = () => {
      this.emit('state', pc.connectionState);
      if (pc.connectionState === 'failed') this.end('connection failed', false);
    };
    pc.ontrack = (e) => this.emit('track', { track: e.track, streams: e.streams });
    pc.ondatachannel = (e) => this.useChannel(e.channel);
    if (stream) for (const t of stream.getTracks()) pc.addTrack(t, stream);
    return pc;
  }

  useChannel(ch) {
    this.channel = ch;
    ch.onopen = () => this.emit('open');
    ch.onmessage = (e) => this.emit('message', e.data);
    ch.onclose = () => this.emit('channelclose');
  }

  signal(data) {
    return this.phone.signaling.send(this.peer, { ...data, call: this.id });
  }

  sendCandidate(candidate) {
    this.signal({ type: 'candidate', candidate }).catch((e) => this.emit('signalerror', e));
  }

  // The offer or answer is out: the candidates gathered meanwhile may follow it.
  flushCandidates() {
    this.described = true;
    for (const c of this.outbox.splice(0)) this.sendCandidate(c);
  }

  async remote(desc) {
    await this.pc.setRemoteDescription(desc);
    for (const c of this.early.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
  }

  async onSignal(data) {
    if (this.ended) return;
    if (data.type === 'answer' && this.direction === 'outgoing' && this.pc) {
      await this.remote({ type: 'answer', sdp: data.sdp });
    } else if (data.type === 'candidate' && data.candidate) {
      if (this.pc && this.pc.remoteDescription) await this.pc.addIceCandidate(data.candidate).catch(() => {});
      else this.early.push(data.candidate);
    } else if (data.type === 'hangup') {
      this.end(data.reason || 'hangup', false);
    }
  }

  // Incoming: answer with @stream's tracks (optional: without, this side only receives).
  async accept({ stream } = {}) {
    if (this.direction !== 'incoming' || !this.offer) throw new Error('not an incoming call');
    const offer = this.offer;
    this.offer = null;
    const pc = await this.setup(stream);
    await this.remote(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await this.signal({ type: 'answer', sdp: pc.localDescription.sdp });
    this.flushCandidates();
    return this;
  }

  reject(reason = 'rejected') {
    return this.end(reason, true);
  }

  hangup(reason = 'hangup') {
    return this.end(reason, true);
  }

  async end(reason, tell) {
    if (this.ended) return;
    this.ended = true;
    this.phone.calls.delete(this.id);
    if (tell) await this.signal({ type: 'hangup', reason }).catch(() => {});
    if (this.pc) this.pc.close();
    this.emit('end', { reason });
  }

  send(text) {
    if (!this.channel || this.channel.readyState !== 'open') throw new Error('data channel not open');
    this.channel.send(text);
  }

  // How the media flows: the selected candidate pair's types. relayed: through TURN.
  async path() {
    if (!this.pc) return null;
    const stats = await this.pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
    return {
      local: local && local.candidateType,
      remote: remote && remote.candidateType,
      relayed: (local && local.candidateType === 'relay') || (remote && remote.candidateType === 'relay'),
      localAddress: local && `${local.address}:${local.port}`,
      remoteAddress: remote && `${remote.address}:${remote.port}`,
    };
  }
}

export class RTGatePhone extends EventTarget {
  // client: an rtgate.js Client to signal through (its url and token are used); else url: the
  // gateway's http(s) base and token: the user's JWT, for a WebSocket of its own. user: defaults
  // to the token's "sub". rtc: extra RTCConfiguration fields (e.g. {iceTransportPolicy: 'relay'}).
  constructor({ url, token, user, rtc = {}, signaling, client, WebSocketImpl } = {}) {
    super();
    this.client = client || null;
    this.url = ((client && client.url) || url || location.origin).replace(/\/+$/, '');
    this.token = token;
    this.user = user || (token && tokenSub(token));
    this.rtc = rtc;
    this.calls = new Map();
    this.signaling = signaling
      || (client ? new ClientSignaling({ client, user: this.user })
        : new WsSignaling({ url: this.url, token, user: this.user, WebSocketImpl }));
    this.signaling.onSignal((m, info) => {
      if (m) this.onMessage(m);
      else this.emit(info && info.online ? 'connected' : 'disconnected', info);
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async connect() {
    const r = await this.signaling.connect();
    this.user = this.user || this.signaling.user;
    return r;
  }

  close() {
    for (const c of [...this.calls.values()]) c.hangup('gone');
    this.signaling.close();
  }

  // GET /v1/ice, fresh for each call: TURN credentials are short-lived.
  async iceConfig() {
    const token = this.client ? await this.client.getToken(false) : this.token;
    const r = await fetch(this.url + '/v1/ice', { headers: { authorization: `Bearer ${token}` } });
    if (!r.ok) throw new Error(`GET /v1/ice: ${r.status}`);
    const { iceServers } = await r.json();
    return { iceServers, ...this.rtc };
  }

  // Calls @peer: offers a DataChannel ("chat") and @stream's tracks. Resolves once the gateway
  // took the offer (the peer is online); rejects with the gateway's error otherwise.
  async call(peer, { stream, channel = 'chat', video = false } = {}) {
    const c = new RTGateCall(this, peer, randomId(), 'outgoing');
    this.calls.set(c.id, c);
    try {
      const pc = await c.setup(stream);
      if (channel) c.useChannel(pc.createDataChannel(channel));
      if (video && !stream) pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await c.signal({ type: 'offer', sdp: pc.localDescription.sdp });
      c.flushCandidates();
    } catch (e) {
      c.ended = true;
      this.calls.delete(c.id);
      if (c.pc) c.pc.close();
      throw e;
    }
    return c;
  }

  onMessage(m) {
    const d = m.data;
    if (!d || typeof d !== 'object' || typeof d.call !== 'string' || !SIGNAL_TYPES.includes(d.type)) return;
    const known = this.calls.get(d.call);
    if (known) {
      if (known.peer === m.from) known.onSignal(d).catch((e) => known.emit('error', e));
      return;
    }
    if (d.type !== 'offer' || typeof d.sdp !== 'string' || !m.from) return;
    const c = new RTGateCall(this, m.from, d.call, 'incoming');
    c.offer = { type: 'offer', sdp: d.sdp };
    this.calls.set(c.id, c);
    this.emit('incoming', c);
  }
}
