#!/usr/bin/env node
// `make bench`: every scenario of docs/BENCHMARKS.md for rtgate, the raw-write ceiling
// (`rtgate-bench raw-server`) and nginx + Nchan, in one run on this machine, with
// build/rtgate-bench as the load generator. Prints a table; writes build/bench/results.json,
// build/bench/results.md and latency CDF plots (gnuplot, PNG and SVG). Key figures are the
// median of --reps runs. Every server is started here with its own config in a temp dir and
// stopped by its pid.
//
//   node bench/run.mjs [--only broadcast,backlog,rate,redis,idle,unicast,longpoll,poll,churn]
//                      [--reps 3] [--n 10000] [--idle-n 18000] [--seconds 5]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = process.env.BUILD || join(ROOT, 'build');
const OUT = join(BUILD, 'bench');
const RTGATE = join(BUILD, 'rtgate');
const BENCH = join(BUILD, 'rtgate-bench');
const NCHAN_SO = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const SECRET = 'bench-secret-0123456789abcdef0123';

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf('--' + name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const REPS = Number(opt('reps', 3));
const N = Number(opt('n', 10000));
const IDLE_N = Number(opt('idle-n', 18000));
const SECONDS = Number(opt('seconds', 5));
const ONLY = opt('only', 'broadcast,backlog,rate,redis,idle,unicast,longpoll,poll,churn').split(',');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('bench:', ...a);

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// A child process that is stopped by its pid (SIGTERM, then SIGKILL after 5 s).
function child(cmd, args, opts = {}) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => p.on('exit', r));
  return {
    proc: p, pid: p.pid, out: () => out,
    async stop() {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function waitFor(fn, ms, what) {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error('timed out waiting for ' + what);
    await sleep(20);
  }
}

// rtgate with the bench's config: local backplane unless @redisPort; no publish rate limit
// (the publisher is one connection), room for 19,000 connections and held long-polls.
async function startRtgate({ redisPort, history = 1000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-bench-'));
  const cf = JSON.parse(readFileSync(join(ROOT, 'conf', 'rtgate.json'), 'utf8'));
  cf.listen = { address: '127.0.0.1', port: 0 };
  cf.log_level = 'notice';
  cf.history = { size: history };
  cf.websocket = { ping_interval_s: 300, idle_timeout_s: 600 };
  cf.limits = { ...cf.limits, publish_rate: 0, max_connections: 19000, max_held_longpolls: 19000,
    send_queue: 4096 };
  cf.auth = { ...cf.auth, jwt_secret: SECRET };
  if (redisPort) {
    cf.backplane = { type: 'redis', url: `redis://127.0.0.1:${redisPort}/0` };
  }
  writeFileSync(join(dir, 'rtgate.json'), JSON.stringify(cf, null, 1));
  const c = child(RTGATE, ['--config', join(dir, 'rtgate.json')]);
  const m = await waitFor(() => c.out().match(/listening on http:\/\/127\.0\.0\.1:(\d+)/), 10000, 'rtgate');
  if (redisPort) await sleep(500); // subscribed to Redis
  return { name: 'rtgate', port: Number(m[1]), pids: [c.pid],
    async stop() { await c.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

async function startRaw() {
  const c = child(BENCH, ['raw-server', '--listen', '127.0.0.1:0']);
  const m = await waitFor(() => c.out().match(/listening on http:\/\/127\.0\.0\.1:(\d+)/), 5000, 'raw-server');
  return { name: 'raw', port: Number(m[1]), pids: [c.pid], stop: () => c.stop() };
}

// nginx + Nchan: one worker (rtgate is one thread too), master and worker CPU both counted.
async function startNchan({ redisPort } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nchan-bench-'));
  const port = await freePort();
  const redis = redisPort ? `nchan_redis_url "redis://127.0.0.1:${redisPort}"; nchan_use_redis on;` : '';
  writeFileSync(join(dir, 'nginx.conf'), `
load_module ${NCHAN_SO};
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 19900;
events { worker_connections 19500; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  server {
    listen 127.0.0.1:${port};
    location ~ ^/pub/(.+)$ { nchan_publisher http websocket; nchan_channel_id $1; ${redis} }
    location ~ ^/sub/(.+)$ {
      nchan_subscriber; nchan_channel_id $1; nchan_subscriber_first_message newest; ${redis}
    }
  }
}
`);
  const c = child('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')]);
  const worker = await waitFor(() => {
    try {
      return readFileSync(`/proc/${c.pid}/task/${c.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)[0];
    } catch { return null; }
  }, 5000, 'nginx worker');
  await sleep(200);
  return { name: 'nchan', port, pids: [c.pid, Number(worker)],
    async stop() { await c.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

async function startRedis() {
  const port = await freePort();
  const c = child('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--daemonize', 'no']);
  await waitFor(() => c.out().includes('Ready to accept connections'), 5000, 'redis');
  return { port, pid: c.pid, stop: () => c.stop() };
}

// One rtgate-bench run; resolves to its JSON line.
function bench(mode, server, args, timeoutMs = 180000) {
  const urls = (server.ports || [server.port]).map((p) => `127.0.0.1:${p}`).join(',');
  const a = [mode, '--url', urls, '--secret', SECRET, '--sources', '16', ...args,
    ...server.pids.flatMap((p) => ['--server-pid', String(p)])];
  if (server.name === 'nchan') a.push('--proto', 'nchan');
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', () => {
      clearTimeout(t);
      try { resolve(JSON.parse(out.trim().split('\n').pop())); } catch {
        reject(new Error(`rtgate-bench ${a.join(' ')}: no result\n${err.slice(-1500)}`));
      }
    });
  });
}

const median = (runs, key) => {
  const s = [...runs].sort((a, b) => key(a) - key(b));
  return s[Math.floor(s.length / 2)];
};

const results = [];
function record(scenario, server, runs, note = '') {
  const r = runs.length > 1 ? median(runs, (x) => x.deliveries_per_s || x.requests_per_s) : runs[0];
  const row = { scenario, server, note, reps: runs.length, ...r,
    all_deliveries_per_s: runs.map((x) => x.deliveries_per_s) };
  results.push(row);
  log(`${scenario} ${server}: ${Math.round(r.deliveries_per_s)} deliveries/s, ` +
      `${r.server_cpu_us_per_delivery.toFixed(2)} us/delivery, p99 ${(r.lat_us.p99 / 1000).toFixed(2)} ms, ` +
      `loss ${r.loss} dups ${r.dups}`);
  return row;
}

async function withServer(start, fn) {
  const s = await start();
  try { return await fn(s); } finally { await s.stop(); }
}

const hasNchan = existsSync(NCHAN_SO) && spawnSync('nginx', ['-v']).status === 0;
const servers = [['rtgate', startRtgate], ['raw', startRaw], ...(hasNchan ? [['nchan', startNchan]] : [])];

async function broadcast(scenario, window, extra = [], reps = REPS) {
  for (const [name, start] of servers) {
    const runs = [];
    for (let i = 0; i < reps; i++) {
      runs.push(await withServer(start, (s) => bench('broadcast', s, ['--clients', String(N),
        '--window', String(window), '--seconds', String(SECONDS), ...extra,
        '--hist', join(OUT, `${scenario}-${name}.cdf`)])));
    }
    record(scenario, name, runs, `${N} WS subscribers, window ${window}`);
  }
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  if (!existsSync(BENCH) || !existsSync(RTGATE)) throw new Error('build first: make build');
  if (!hasNchan) log('nginx + Nchan not installed (scripts/deps.sh bench): Nchan rows skipped');
  const machine = {
    cpus: spawnSync('nproc').stdout.toString().trim(),
    model: (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1],
    kernel: spawnSync('uname', ['-r']).stdout.toString().trim(),
    loadavg_at_start: readFileSync('/proc/loadavg', 'utf8').trim(),
    date: new Date().toISOString(),
  };

  // Saturating broadcast, one message in flight: one write per message, per socket.
  if (ONLY.includes('broadcast')) await broadcast('broadcast', 1);
  // Under backlog: 16 messages in flight, so queues hold several.
  if (ONLY.includes('backlog')) await broadcast('backlog', 16);
  // A sustainable rate: 20 msg/s to every subscriber, or half what the raw limit sustained in
  // this run if 20/s would saturate this machine (a loaded box cannot push 200 k/s).
  const raw = results.find((r) => r.scenario === 'broadcast' && r.server === 'raw');
  const rate = raw ? Math.max(1, Math.min(20, Math.floor(raw.deliveries_per_s / 2 / N))) : 20;
  if (ONLY.includes('rate')) {
    if (rate < 20) log(`rate: ${rate} msg/s (20/s is more than half the raw limit here)`);
    await broadcast('rate', 100, ['--rate', String(rate)], 1);
  }

  // The same saturating broadcast with Redis between publisher and subscribers: rtgate with
  // its Redis backplane, Nchan with nchan_use_redis (the raw ceiling has no Redis variant).
  if (ONLY.includes('redis')) {
    const redis = await startRedis();
    try {
      for (const [name, start] of servers.filter(([n]) => n !== 'raw')) {
        const r = await withServer(() => start({ redisPort: redis.port }), (s) => bench('broadcast',
          { ...s, pids: [...s.pids, redis.pid] }, ['--clients', String(N), '--window', '1',
            '--seconds', String(SECONDS), '--hist', join(OUT, `redis-${name}.cdf`)]));
        record('broadcast-redis', name, [r], `${N} WS subscribers, window 1, through Redis`);
      }
    } finally {
      await redis.stop();
    }
  }

  if (ONLY.includes('idle')) {
    for (const [name, start] of servers.filter(([n]) => n !== 'raw')) {
      for (const tr of ['ws', 'sse']) {
        const r = await withServer(start, (s) => bench('idle', s, ['--clients', String(IDLE_N),
          '--transport', tr, '--seconds', '2', '--connect-batch', '512']));
        record(`idle-${tr}`, name, [r], `${IDLE_N} idle ${tr} connections`);
      }
    }
  }

  if (ONLY.includes('unicast')) {
    const redis = await startRedis();
    try {
      const a = await startRtgate({ redisPort: redis.port });
      const b = await startRtgate({ redisPort: redis.port });
      try {
        const two = { name: 'rtgate', ports: [a.port, b.port], pids: [a.pids[0], b.pids[0], redis.pid] };
        const r = await bench('unicast', two, ['--clients', String(N), '--publishers', '2',
          '--rate', '20000', '--window', '20000', '--seconds', String(SECONDS),
          '--hist', join(OUT, 'unicast-redis-rtgate.cdf')]);
        record('unicast-redis', 'rtgate', [r], `${N} users on 2 nodes + Redis, 20,000 msg/s offered`);
      } finally {
        await a.stop();
        await b.stop();
      }
    } finally {
      await redis.stop();
    }
  }

  if (ONLY.includes('longpoll')) {
    const r = await withServer(startRtgate, (s) => bench('broadcast', s, ['--clients', String(IDLE_N),
      '--transport', 'longpoll', '--count', '1', '--rate', '1', '--settle-ms', '3000',
      '--connect-batch', '512']));
    record('longpoll-held', 'rtgate', [r], `${IDLE_N} held long-polls, one broadcast`);
  }

  if (ONLY.includes('poll')) {
    const r = await withServer(startRtgate, (s) => bench('idle', s, ['--clients', '100',
      '--transport', 'poll', '--seconds', String(SECONDS)]));
    record('poll', 'rtgate', [r], '100 connections polling with a current cursor, closed loop');
  }

  if (ONLY.includes('churn')) {
    const r = await withServer(() => startRtgate({ history: 2000 }), (s) => bench('churn', s,
      ['--clients', String(N), '--transport', 'sse', '--rate', String(rate), '--seconds', String(SECONDS + 3),
        '--churn-at', '2', '--churn-window-ms', '1000', '--connect-batch', '1024']));
    record('churn-sse', 'rtgate', [r], `${N} SSE clients reconnect with cursors within 1 s, ${rate} msg/s`);
  }

  writeFileSync(join(OUT, 'results.json'), JSON.stringify({ machine, results }, null, 1));
  const md = table(machine);
  writeFileSync(join(OUT, 'results.md'), md);
  console.log(md);
  plot();
}

function fmt(n, d = 0) {
  return n === undefined || n === null ? '' : Number(n).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
}

function table(machine) {
  const byKey = (sc, sv) => results.find((r) => r.scenario === sc && r.server === sv);
  const lines = [
    `Machine: ${machine.cpus} CPUs (${machine.model}), Linux ${machine.kernel}, load average at start ${machine.loadavg_at_start}; ${machine.date}`,
    '',
    '| scenario | server | deliveries/s (runs) | vs raw | server µs/delivery | vs raw | client µs/delivery | TCP segs/delivery | p50 ms | p99 ms | max ms | delivered/expected | loss | dups | other |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const raw = byKey(r.scenario, 'raw');
    const other = r.scenario.startsWith('idle') ? `RSS growth ${fmt(r.server_rss_growth_per_conn_bytes)} B/conn, connect ${fmt(r.connect_s, 1)} s`
      : r.scenario === 'poll' ? `${fmt(r.requests_per_s)} req/s`
      : r.scenario.startsWith('churn') ? `recovery ${fmt(r.recovery_ms)} ms, ${r.reconnects} reconnects`
      : r.scenario.startsWith('longpoll') ? `all answered in ${fmt(r.lat_us.max / 1000, 1)} ms`
      : r.scenario === 'rate' ? `${r.note}, ${r.rate} msg/s`
      : r.note;
    const refused = r.publish_errors ? `, ${r.publish_errors} publishes refused` : '';
    lines.push(`| ${r.scenario} | ${r.server} | ${fmt(r.deliveries_per_s)}${r.reps > 1 ? ' (' + r.all_deliveries_per_s.map((x) => fmt(x / 1000) + 'k').join(', ') + ')' : ''} | ` +
      `${raw && r.server !== 'raw' && raw.deliveries_per_s ? fmt(r.deliveries_per_s / raw.deliveries_per_s, 2) + '×' : ''} | ` +
      `${fmt(r.server_cpu_us_per_delivery, 2)} | ${raw && r.server !== 'raw' && raw.server_cpu_us_per_delivery ? fmt(r.server_cpu_us_per_delivery / raw.server_cpu_us_per_delivery, 2) + '×' : ''} | ` +
      `${fmt(r.client_cpu_us_per_delivery, 2)} | ${fmt(r.tcp_segs_per_delivery, 2)} | ${fmt(r.lat_us.p50 / 1000, 2)} | ${fmt(r.lat_us.p99 / 1000, 2)} | ${fmt(r.lat_us.max / 1000, 1)} | ` +
      `${fmt(r.delivered)}/${fmt(r.expected)} | ${r.loss} | ${r.dups} | ${other}${refused} |`);
  }
  return lines.join('\n') + '\n';
}

// Latency CDFs of each broadcast scenario, one line per server, with gnuplot if installed.
function plot() {
  if (spawnSync('gnuplot', ['--version']).status !== 0) {
    log('gnuplot not installed: no plots');
    return;
  }
  for (const sc of ['broadcast', 'backlog', 'rate']) {
    const files = servers.map(([n]) => [n, join(OUT, `${sc}-${n}.cdf`)]).filter(([, f]) => existsSync(f));
    if (!files.length) continue;
    for (const [term, ext] of [['png size 900,540', 'png'], ['svg size 900,540', 'svg']]) {
      const script = [
        `set terminal ${term}`, `set output '${join(OUT, `latency-${sc}.${ext}`)}'`,
        `set title 'publish -> receive latency, ${sc} (${N} WebSocket subscribers)'`,
        "set logscale x", "set xlabel 'latency (ms)'", "set ylabel 'fraction of deliveries'",
        "set key bottom right", "set grid",
        'plot ' + files.map(([n, f]) => `'${f}' using ($1/1000):2 with lines lw 2 title '${n}'`).join(', '),
      ].join('\n');
      const r = spawnSync('gnuplot', [], { input: script });
      if (r.status !== 0) log('gnuplot:', r.stderr.toString());
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
