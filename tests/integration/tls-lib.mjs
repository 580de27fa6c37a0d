// A test CA and a server certificate for 127.0.0.1/localhost, made with the openssl command
// line in a temp dir: { dir, f(name), ossl(...args), ca, cert, key, caPem, cleanup() }.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function testCertificates() {
  const dir = mkdtempSync(join(tmpdir(), 'rtgate-tls-'));
  const f = (n) => join(dir, n);
  const ossl = (...a) => execFileSync('openssl', a, { stdio: ['ignore', 'pipe', 'pipe'] });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=rtgate test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
    '-keyout', f('srv.key'), '-out', f('srv.csr'));
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ossl('x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', f('ext.cnf'), '-out', f('srv.pem'));
  return {
    dir, f, ossl, ca: f('ca.pem'), cert: f('srv.pem'), key: f('srv.key'),
    caPem: readFileSync(f('ca.pem')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
