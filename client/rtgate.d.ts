// Types of rtgate.js, the browser client of rtgate (served at /v1/client.js).

export type Transport = 'websocket' | 'sse' | 'longpoll' | 'poll';

/** A stored message as every transport delivers it. */
export interface StoredMessage<T = unknown> {
  /** "<ms>-<seq>", growing per topic */
  id: string;
  topic: string;
  /** the sender's user id (from its token), or null for a backend publish without "from" */
  from: string | null;
  /** publish time, ms since the epoch */
  ts: number;
  data: T;
  ephemeral?: undefined;
}

/** A live-only message (sent with {ephemeral: true}): no id, never replayed, no cursor move. */
export interface EphemeralMessage<T = unknown> {
  id?: undefined;
  topic: string;
  from: string | null;
  ts: number;
  data: T;
  ephemeral: true;
}

export type Message<T = unknown> = StoredMessage<T> | EphemeralMessage<T>;

export interface Options {
  /** a JWT; or getToken */
  token?: string;
  /** called for the first token and again when the gateway says it expired */
  getToken?: () => Promise<string> | string;
  /** tried in this order; default ['websocket', 'sse', 'longpoll', 'poll']; one forces it */
  transports?: Transport[];
  /** a WebSocket or SSE stream not open by then has failed (default 6000) */
  connectTimeoutMs?: number;
  /** WebSocket: ping after this much quiet (default 15000) */
  pingMs?: number;
  /** quiet that counts as a stall; 0 (default): from the gateway's heartbeat */
  stallMs?: number;
  /** on a fallback, try the better transports this often (default 60000; 0: never) */
  upgradeMs?: number;
  /** reconnect backoff: random in [0, min(max, min * 2^failures)) (defaults 500, 15000) */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** simple polling interval (default 2000) */
  pollMs?: number;
  /** long-poll timeout asked of the gateway (default 25) */
  longpollTimeoutS?: number;
  /** for tests: WebSocket, EventSource, fetch, setTimeout, clearTimeout, random, now */
  env?: Record<string, unknown>;
}

export interface Events {
  connected: { transport: Transport; node: string | null };
  disconnected: { transport: Transport; reason: string };
  message: Message;
  /** history was lost for the topic (messages were missed): reload its state */
  reset: { topic: string };
  error: { error: string; status?: number; topic?: string };
}

export type Published = { id: string; topic: string; ephemeral?: undefined } | { topic: string; ephemeral: true };

export interface SendOptions {
  /** live only: delivered to current subscribers, never stored; rejected "recipient offline" (409) when there are none */
  ephemeral?: boolean;
}

export declare class Client {
  constructor(url: string, options?: Options);
  /** the transport in use, or null while disconnected */
  readonly transport: Transport | null;
  /** the gateway node (its node_id) last connected to */
  readonly node: string | null;
  /** the gateway's base URL, as given */
  readonly url: string;
  /** the token in use (fresh: from getToken again); helpers such as rtgate-call.js use it */
  getToken(fresh?: boolean): Promise<string>;
  start(): this;
  close(): void;
  subscribe<T = unknown>(topic: string, handler?: (m: Message<T>) => void, opts?: { cursor?: string }): () => void;
  unsubscribe(topic: string, handler?: (m: Message) => void): void;
  /** the opaque cursor just after the last message delivered on the topic */
  cursor(topic: string): string;
  /** to a user's inbox (user:<user>) */
  send(user: string, data: unknown, opts?: SendOptions): Promise<Published>;
  publish(topic: string, data: unknown, opts?: SendOptions): Promise<Published>;
  on<E extends keyof Events>(event: E, fn: (arg: Events[E]) => void): this;
  off<E extends keyof Events>(event: E, fn: (arg: Events[E]) => void): this;
}

/** new Client(url, options).start() */
export declare function connect(url: string, options?: Options): Client;

/** Cursor helpers (the client's own bookkeeping; cursors are otherwise opaque). */
export declare function splitCursor(cursor: string): Map<string, string>;
export declare function joinCursor(parts: string[]): string;
export declare function compareIds(a: string, b: string): number;

declare const _default: { connect: typeof connect; Client: typeof Client };
export default _default;
