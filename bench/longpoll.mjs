#!/usr/bin/env node
// Benchmark: how fast held long-polls are answered after a publish, and what they cost idle.
// Holds N long-polls on one topic against a local rtgate, publishes one message, and reports
// publish-to-answer latency over all N (ms), then the server's CPU while N are held idle.
// Usage: node bench/longpoll.mjs [--polls 1000] [--rounds 5]
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = process.env.RTGATE_BIN || join(ROOT, 'build', 'rtgate');
const arg = (n, d) => { const i = process.argv.indexOf('--' + n); return i > 0 ? Number(process.argv[i + 1]) : d; };
const POLLS = arg('polls', 1000), ROUNDS = arg('rounds', 5);
const SECRET = 'bench-secret-0123456789abcdef', KEY = 'bench-api-key-0123456789abcdef';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const t = Math.floor(Date.now() / 1000);
const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64({ sub: 'bench', iat: t, exp: t + 3600 });
const TOKEN = body + '.' + createHmac('sha256', SECRET).update(body).digest('base64url');

const port = await new Promise((r) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const dir = mkdtempSync(join(tmpdir(), 'rtgate-lpbench-'));
const cf = JSON.parse(readFileSync(join(ROOT, 'conf', 'rtgate.json'), 'utf8'));
cf.listen = { address: '127.0.0.1', port };
cf.log_level = 'warn';
cf.auth = { jwt_secret: SECRET, api_keys: [KEY], default_topics: ['*'], default_publish: ['*'] };
cf.limits = { ...cf.limits, max_connections: POLLS + 100, max_held_longpolls: POLLS + 100 };
writeFileSync(join(dir, 'c.json'), JSON.stringify(cf));
const gw = spawn(BIN, ['--config', join(dir, 'c.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
const cpu = () => { const f = readFileSync(`/proc/${gw.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const get = (path) => new Promise((resolve) => {
  http.get({ host: '127.0.0.1', port, path, agent, headers: { authorization: 'Bearer ' + TOKEN } }, (res) => {
    let b = '';
    res.on('data', (d) => (b += d));
    res.on('end', () => resolve({ at: now(), status: res.statusCode, body: b }));
  }).on('error', () => resolve({ at: now(), status: 0 }));
});
try {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => http.get(`http://127.0.0.1:${port}/healthz`, (res) => { res.resume(); r(true); }).on('error', () => r(false)));
    if (ok) break;
    await sleep(50);
  }
  const all = [];
  let idleCpu = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const first = JSON.parse((await get('/v1/poll?topics=room:lp')).body).cursor;
    const answers = [];
    for (let i = 0; i < POLLS; i++) answers.push(get(`/v1/longpoll?topics=room:lp&cursor=${first}&timeout=30`));
    await sleep(1000); // all held
    const c0 = cpu();
    await sleep(1000);
    idleCpu = Math.max(idleCpu, cpu() - c0);
    const t0 = now();
    await new Promise((resolve) => {
      const data = JSON.stringify({ topic: 'room:lp', data: round });
      const req = http.request({ host: '127.0.0.1', port, path: '/v1/publish', method: 'POST', agent,
        headers: { 'x-api-key': KEY, 'content-type': 'application/json', 'content-length': data.length } }, (res) => { res.resume(); res.on('end', resolve); });
      req.end(data);
    });
    const got = await Promise.all(answers);
    const bad = got.filter((g) => g.status !== 200 || !g.body.includes(`"data":${round}`)).length;
    if (bad) throw new Error(`${bad} long-polls not answered with the message`);
    all.push(...got.map((g) => g.at - t0));
  }
  all.sort((a, b) => a - b);
  const p = (q) => +all[Math.min(all.length - 1, Math.floor(q * all.length))].toFixed(2);
  console.log(JSON.stringify({ bench: 'longpoll', held: POLLS, rounds: ROUNDS, answered: all.length,
    publish_to_answer_ms: { p50: p(0.5), p90: p(0.9), p99: p(0.99), max: p(1) },
    server_cpu_s_per_s_while_held_idle: +idleCpu.toFixed(3) }));
} finally {
  gw.kill('SIGTERM');
  agent.destroy();
  await sleep(300);
  rmSync(dir, { recursive: true, force: true });
}
