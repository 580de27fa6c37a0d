// TLS on the listener: a test CA and a server certificate made here with the openssl command
// line; https (curl, fetch-free Node https) and wss round trips; TLS 1.1 refused; a plain-HTTP
// client on the TLS port does not get an answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import WebSocket from 'ws';
import { startGateway, API_KEY } from './lib.mjs';
import { testCertificates } from './tls-lib.mjs';

const tc = testCertificates();
const { f, ossl } = tc;
test.after(() => tc.cleanup());

function get(gw, path, token) {
  return new Promise((resolve, reject) => {
    https.get(`${gw.url}${path}`, { ca: readFileSync(f('ca.pem')), agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let b = '';
      const proto = res.socket.getProtocol();
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode, body: b, proto }));
    }).on('error', reject);
  });
}

test('https and wss with a test CA; TLS 1.1 and plain HTTP refused', async () => {
  const gw = await startGateway({ listen: { tls_cert_file: f('srv.pem'), tls_key_file: f('srv.key') } });
  try {
    assert.match(gw.url, /^https:\/\//);
    const h = await get(gw, '/healthz');
    assert.deepEqual([h.status, h.body], [200, '{"status":"ok"}']);
    assert.ok(['TLSv1.2', 'TLSv1.3'].includes(h.proto), h.proto);

    // curl: publish over https, verified against the CA
    const c = spawnSync('curl', ['-sS', '--cacert', f('ca.pem'), '-H', `x-api-key: ${API_KEY}`, '-H', 'content-type: application/json',
      '-d', '{"topic":"room:tls","data":1}', `${gw.url}/v1/publish`], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /^\{"id":"\d+-\d+","topic":"room:tls"\}$/);

    // wss round trip
    const ws = new WebSocket(`wss://127.0.0.1:${gw.port}/v1/ws?token=${gw.token('bob')}`, { ca: readFileSync(f('ca.pem')) });
    const frames = [];
    ws.on('message', (d) => frames.push(JSON.parse(d)));
    await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
    ws.send(JSON.stringify({ type: 'subscribe', topic: 'room:tls', rid: 1 }));
    ws.send(JSON.stringify({ type: 'publish', topic: 'room:tls', data: 'over wss', rid: 2 }));
    const t0 = Date.now();
    while (!frames.some((x) => x.type === 'message') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(frames.find((x) => x.type === 'message').data, 'over wss');
    ws.close();

    // TLS 1.1 is refused at the handshake; a certificate from another CA is not trusted
    const old = spawnSync('curl', ['-sS', '-k', '--tlsv1.1', '--tls-max', '1.1', `${gw.url}/healthz`], { encoding: 'utf8' });
    assert.notEqual(old.status, 0);
    const untrusted = spawnSync('curl', ['-sS', `${gw.url}/healthz`], { encoding: 'utf8' });
    assert.notEqual(untrusted.status, 0);
    // plain HTTP on the TLS port gets no HTTP answer
    const plain = spawnSync('curl', ['-sS', '-m', '3', `http://127.0.0.1:${gw.port}/healthz`], { encoding: 'utf8' });
    assert.doesNotMatch(plain.stdout, /"status":"ok"/);
    assert.equal((await get(gw, '/healthz')).status, 200); // still serving
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});

test('a missing certificate file stops start-up with the key and reason', () => {
  const cfg = f('bad.json');
  writeFileSync(cfg, JSON.stringify({ listen: { tls_cert_file: f('nope.pem'), tls_key_file: f('srv.key') }, auth: { jwt_secret: 'x'.repeat(20) } }));
  const r = spawnSync(process.env.RTGATE_BIN || 'build/rtgate', ['--check-config', '--config', cfg], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim(), `rtgate: ${cfg}: listen.tls_cert_file: cannot read "${f('nope.pem')}": No such file or directory`);
});

test('SIGHUP loads a renewed certificate for new handshakes', async () => {
  const certf = f('renew.pem'), keyf = f('renew.key');
  const issue = () => {
    ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
      '-keyout', keyf, '-out', f('renew.csr'));
    ossl('x509', '-req', '-in', f('renew.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-days', '2', '-extfile', f('ext.cnf'), '-out', certf);
  };
  const serial = (gw) => new Promise((resolve, reject) => {
    https.get(`${gw.url}/healthz`, { ca: readFileSync(f('ca.pem')), agent: false }, (res) => {
      const s = res.socket.getPeerCertificate().serialNumber;
      res.resume();
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  issue();
  const gw = await startGateway({ listen: { tls_cert_file: certf, tls_key_file: keyf } });
  try {
    const before = await serial(gw);
    issue(); // renewed in place, as certbot and friends do
    gw.proc.kill('SIGHUP');
    const t0 = Date.now();
    while (!gw.logs().includes('TLS certificate reloaded') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
    const after = await serial(gw);
    assert.notEqual(after, before);
    assert.equal(after, execFileSync('openssl', ['x509', '-in', certf, '-noout', '-serial']).toString().trim().split('=')[1].toUpperCase());
  } finally {
    assert.equal((await gw.stop()).code, 0, gw.logs());
  }
});
