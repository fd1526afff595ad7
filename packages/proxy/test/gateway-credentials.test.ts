/**
 * Gateway credential files → SDS secrets in the config store: the directory layouts, the file-mount names, what
 * is refused and why, unavailable names not holding readiness back, and reloads keeping the last good secret.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TYPE_URL, decodeEnvoyResource, EXT_TYPE_URL } from '@trellis/api';
import { issueTestCert, makeTestCa } from '@trellis/testing';
import { ConfigStore } from '../src/config/store.js';
import { credentialSource } from '../src/gateway/credential-files.js';
import { GatewayCredentials } from '../src/gateway/credentials.js';
import { loadCredential } from '../src/gateway/load-credential.js';
import { TlsContexts } from '../src/tls/contexts.js';
import { createLogger } from '../src/log.js';

const sds = (name: string) => ({ name, sds_config: { ads: {} } });

/** A listener whose one chain terminates TLS with `cert` (and validates clients with `ca`). */
function listenerNaming(cert: string, ca?: string) {
  return decodeEnvoyResource(TYPE_URL.listener, {
    name: 'gw', address: { socket_address: { address: '0.0.0.0', port_value: 443 } },
    filter_chains: [{
      transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': EXT_TYPE_URL.downstreamTlsContext, common_tls_context: {
        tls_certificate_sds_secret_configs: [sds(cert)], ...(ca ? { validation_context_sds_secret_config: sds(ca) } : {}),
      } } },
      filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: 's', cluster: 'c' } }],
    }],
  });
}

describe('gateway credentials from files', () => {
  let dir: string;
  const ca = makeTestCa();
  const cert = issueTestCert(ca, 'spiffe://t/a', { dnsNames: ['a.example.com'] });
  const lines: string[] = [];
  const logger = createLogger('info', { write: (s: string) => lines.push(s) });

  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'tF-cred-')); lines.length = 0; });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const put = (rel: string, text: string) => { mkdirSync(join(dir, rel, '..'), { recursive: true }); writeFileSync(join(dir, rel), text); };

  it('maps SDS names to files: credentialName, -cacert (own secret or ca.crt beside the cert), generic keys, file-cert/file-root', () => {
    expect(credentialSource('a', dir)).to.deep.equal({ kind: 'tls_certificate', certFile: join(dir, 'a/tls.crt'), keyFile: join(dir, 'a/tls.key') });
    expect(credentialSource('a-cacert', dir)).to.deep.equal({ kind: 'validation_context', caFile: join(dir, 'a/ca.crt') });
    put('b-cacert/ca.crt', ca.certPem);
    expect(credentialSource('b-cacert', dir)).to.deep.equal({ kind: 'validation_context', caFile: join(dir, 'b-cacert/ca.crt') });
    put('g/cert', cert.certPem);
    put('g/key', cert.keyPem);
    expect(credentialSource('g', dir)).to.deep.equal({ kind: 'tls_certificate', certFile: join(dir, 'g/cert'), keyFile: join(dir, 'g/key') });
    expect(credentialSource('file-cert:/etc/c.pem~/etc/k.pem', null)).to.deep.equal({ kind: 'tls_certificate', certFile: '/etc/c.pem', keyFile: '/etc/k.pem' });
    expect(credentialSource('file-root:/etc/ca.pem', null)).to.deep.equal({ kind: 'validation_context', caFile: '/etc/ca.pem' });
    for (const agentOnly of ['default', 'ROOTCA']) expect(credentialSource(agentOnly, dir)).to.equal(null);
    expect(credentialSource('a', null)).to.equal(null);
    expect(credentialSource('../etc', dir)).to.equal(null);
  });

  it('refuses what would fail a handshake, naming the file and the reason', () => {
    put('a/tls.crt', cert.chainPem);
    put('a/tls.key', issueTestCert(ca, 'spiffe://t/other').keyPem);
    const src = credentialSource('a', dir)!;
    const mismatch = loadCredential('a', src);
    expect(mismatch).to.include({ ok: false, file: join(dir, 'a/tls.key') });
    expect(!mismatch.ok && mismatch.reason).to.match(/does not match the certificate/);
    put('a/tls.key', 'garbage');
    expect(loadCredential('a', src)).to.include({ ok: false, file: join(dir, 'a/tls.key') });
    put('a/tls.crt', 'not pem');
    expect(loadCredential('a', src)).to.deep.equal({ ok: false, file: join(dir, 'a/tls.crt'), reason: 'no PEM certificate in the file' });
    expect(loadCredential('x', credentialSource('x', dir)!)).to.deep.equal({ ok: false, file: join(dir, 'x/tls.crt'), reason: 'no such file' });
    put('a/tls.crt', cert.chainPem);
    put('a/tls.key', cert.keyPem);
    const good = loadCredential('a', src);
    expect(good.ok && good.secret.kind).to.equal('tls_certificate');
  });

  it('loads what the listeners name, keeps the last good secret on a bad update, and never holds readiness for an unavailable one', () => {
    const store = new ConfigStore();
    const abort = new AbortController();
    const creds = new GatewayCredentials({ store, logger, dir, resyncMs: 0 });
    creds.start(abort.signal);
    try {
      put('a/tls.crt', cert.chainPem);
      put('a/tls.key', cert.keyPem);
      put('a/ca.crt', ca.certPem);
      store.replace('listener', '1', new Map([['gw', listenerNaming('a', 'a-cacert')], ['gw2', { ...listenerNaming('missing'), name: 'gw2' }]]), new Map());
      store.replace('cluster', '1', new Map(), new Map());
      expect(store.secrets().get('a')?.kind).to.equal('tls_certificate');
      expect(store.secrets().get('a-cacert')?.kind).to.equal('validation_context');
      expect(creds.unavailableNames()).to.deep.equal(['missing']);
      expect(store.missing()).to.deep.equal([]);
      expect(lines.join('')).to.match(/"msg":"gateway credential unavailable[^"]*","credential":"missing","file":"[^"]*missing\/tls.crt","reason":"no such file"/);
      const before = store.secrets().get('a');
      put('a/tls.key', 'truncated');
      creds.reload();
      expect(store.secrets().get('a')).to.equal(before);
      expect(lines.join('')).to.match(/"msg":"gateway credential update rejected; the last good one stays in use","credential":"a"/);
      const next = issueTestCert(ca, 'spiffe://t/a2', { dnsNames: ['a.example.com'] });
      put('a/tls.crt', next.chainPem);
      put('a/tls.key', next.keyPem);
      creds.reload();
      const after = store.secrets().get('a');
      expect(after !== before && after?.kind === 'tls_certificate' && after.certificateChain).to.equal(next.chainPem);
      expect(lines.join('')).to.match(/"msg":"gateway credential rotated","credential":"a"/);
      // the missing one appears: available, logged
      put('missing/tls.crt', cert.chainPem);
      put('missing/tls.key', cert.keyPem);
      creds.reload();
      expect(creds.unavailableNames()).to.deep.equal([]);
      expect(store.secrets().has('missing')).to.equal(true);
    } finally {
      abort.abort();
    }
  });

  it('several certificates for one server (credentialNames: RSA and ECDSA): the client\'s algorithms pick one', async function () {
    try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); } catch { this.skip(); }
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'ec.key'), '-out', join(dir, 'ec.crt'),
      '-subj', '/CN=a.example.com', '-addext', 'subjectAltName=DNS:a.example.com', '-days', '1'], { stdio: 'ignore' });
    const store = new ConfigStore();
    const ec = { kind: 'tls_certificate' as const, certificateChain: readFileSync(join(dir, 'ec.crt'), 'utf8'), privateKey: readFileSync(join(dir, 'ec.key'), 'utf8') };
    store.replace('secret', '1', new Map([['rsa', { name: 'rsa', kind: 'tls_certificate', certificateChain: cert.chainPem, privateKey: cert.keyPem }], ['ecdsa', { name: 'ecdsa', ...ec }]]), new Map());
    const ctxs = new TlsContexts(store);
    const both = ctxs.get({ certificateSds: ['rsa', 'ecdsa'], validationSds: null, matchSubjectAltNames: [], alpn: [] })!;
    expect(both).to.not.equal(null);
    expect(ctxs.get({ certificateSds: ['rsa', 'missing'], validationSds: null, matchSubjectAltNames: [], alpn: [] })).to.equal(null);
    // as the listener manager serves it: a hand-made server TLSSocket with the shared context
    const server = net.createServer((sock) => { const t = new tls.TLSSocket(sock, { isServer: true, secureContext: both.ctx }); t.on('secure', () => t.end()); t.on('error', () => sock.destroy()); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const keyType = (sigalgs: string) => new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername: 'a.example.com', rejectUnauthorized: false, sigalgs }, () => {
        resolve(c.getPeerX509Certificate()!.publicKey.asymmetricKeyType!);
        c.destroy();
      });
      c.on('error', reject);
    });
    try {
      expect(await keyType('ecdsa_secp256r1_sha256')).to.equal('ec');
      expect(await keyType('rsa_pkcs1_sha256:rsa_pss_rsae_sha256')).to.equal('rsa');
    } finally {
      server.close();
    }
  });
});
