/**
 * trellis-control's operator extras, through the real process:
 * - `--ca-dir` with a company root + intermediate made by openssl; `--workload-cert-ttl` / `--max-workload-cert-ttl`
 *   seen in what CreateCertificate issues and refuses;
 * - the validating admission webhook on `--listen-webhook` (HTTPS, certificate from the plug-in CA);
 * - sd_notify: READY=1 once listening with a snapshot, WATCHDOG=1 pings, STOPPING=1, to a unix datagram socket.
 */
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeResource, formatViolation } from '@trellis/model';
import { buildCsr, generateKey, isRefusal, requestCertificate } from '@trellis/node-agent';
import { CONTROL_BIN, eventually, start, startControl, type ControlProcess } from './processes.js';

const WORKLOAD_GROUP = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: billing-vms, namespace: shop}
spec:
  template: {serviceAccount: billing}
`;

/** Node has no AF_UNIX datagram sockets: systemd's side of the notify protocol is a tiny python3 receiver. */
const RECEIVER = `
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('BOUND', flush=True)
while True:
    print(json.dumps(s.recv(4096).decode()), flush=True)
`;

interface Receiver { readonly messages: string[]; close(): void }

async function startReceiver(path: string): Promise<Receiver> {
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let buffered = '';
  let bound: () => void = () => {};
  const isBound = new Promise<void>((r) => { bound = r; });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === 'BOUND') bound();
      else messages.push(JSON.parse(line) as string);
    }
  });
  await isBound;
  return { messages, close: () => child.kill() };
}

function post(url: string, body: string, ca: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => {
        try { resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }); } catch (err) { reject(err); }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function review(uid: string, operation: string, object: unknown, kind = { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid, kind, resource: { group: kind.group, version: kind.version, resource: 'virtualservices' }, namespace: 'shop', operation, object, oldObject: null },
  });
}

const GOOD_VS = {
  apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'billing', namespace: 'shop', uid: 'u-1', resourceVersion: '7' },
  spec: { hosts: ['billing'], http: [{ route: [{ destination: { host: 'billing', subset: 'v1' }, weight: 100 }] }] },
};
const BAD_VS = {
  apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'billing', namespace: 'shop' },
  spec: { hosts: ['billing'], http: [{ route: [{ destination: { host: 'billing' }, weight: 150 }, { destination: {}, wieght: 3 }] }] },
};

describe('trellis-control: --ca-dir, certificate lifetimes, the validating webhook, sd_notify', function () {
  this.timeout(90_000);
  let dir: string;
  let caDir: string;
  let rootPem: string;
  let control: ControlProcess;
  let receiver: Receiver;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-control-extras-'));
    caDir = join(dir, 'cacerts');
    mkdirSync(caDir);
    const ossl = (args: string[]): void => void execFileSync('openssl', args, { cwd: caDir, stdio: 'ignore' });
    ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'company-root.key', '-out', 'root-cert.pem', '-days', '30',
      '-subj', '/O=Example Corp/CN=Example Corp Root', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-key.pem', '-out', 'int.csr', '-subj', '/O=Example Corp/CN=Mesh Intermediate']);
    writeFileSync(join(caDir, 'ext.cnf'), 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    ossl(['x509', '-req', '-in', 'int.csr', '-CA', 'root-cert.pem', '-CAkey', 'company-root.key', '-CAcreateserial', '-out', 'ca-cert.pem', '-days', '20', '-extfile', 'ext.cnf']);
    writeFileSync(join(caDir, 'cert-chain.pem'), readFileSync(join(caDir, 'ca-cert.pem'), 'utf8') + readFileSync(join(caDir, 'root-cert.pem'), 'utf8'));
    chmodSync(join(caDir, 'ca-key.pem'), 0o600);
    rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'wg.yaml'), WORKLOAD_GROUP);
    receiver = await startReceiver(join(dir, 'notify.sock'));
    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'state'), '--ca-dir', caDir,
      '--listen-xds', '127.0.0.1:0', '--listen-xds-plaintext', 'off', '--listen-http', '127.0.0.1:0', '--listen-webhook', '127.0.0.1:0',
      '--workload-cert-ttl', '2h', '--max-workload-cert-ttl', '3h',
    ], ['xds', 'http', 'webhook'], { NOTIFY_SOCKET: join(dir, 'notify.sock'), WATCHDOG_USEC: '300000' });
  });

  after(async () => {
    await control?.stop();
    receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends READY=1 (with a STATUS) once it serves a snapshot, then WATCHDOG=1 every half WATCHDOG_USEC', async () => {
    const ready = await eventually('READY=1', () => receiver.messages.find((m) => m.startsWith('READY=1')));
    expect(ready).to.match(/^READY=1\nSTATUS=serving snapshot \S+ \(\d+ services, 0 proxies\)$/);
    const res = await fetch(`http://${control.addresses.http}/ready`);
    expect(res.status).to.equal(200);
    await eventually('two watchdog pings', () => receiver.messages.filter((m) => m === 'WATCHDOG=1').length >= 2);
    expect(receiver.messages.indexOf(ready)).to.be.lessThan(receiver.messages.indexOf('WATCHDOG=1'));
  });

  it('issues from the plug-in intermediate: the chain ends at the company root, the default lifetime is --workload-cert-ttl, over --max-workload-cert-ttl is refused', async () => {
    expect(control.lines.some((l) => l.includes('"event":"ca loaded"') && l.includes('"source":"plugin-dir"') && l.includes('"workloadCertTtlSeconds":7200') && l.includes('"maxWorkloadCertTtlSeconds":10800'))).to.equal(true);
    const mint = async (): Promise<string> => eventually('a join token', async () => {
      const r = await fetch(`http://${control.addresses.http}/v1/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'shop', workloadGroup: 'billing-vms' }) });
      return r.status === 201 ? ((await r.json()) as { token: string }).token : undefined;
    });
    const key = await generateKey();
    // The xDS port's own certificate also comes from the intermediate: the client trusts only the company root.
    const chain = await requestCertificate({ address: control.addresses.xds, rootCertsPem: rootPem }, {
      csrPem: buildCsr(key, 'spiffe://cluster.local/ns/shop/sa/billing'), validitySeconds: 0, credential: { kind: 'token', token: await mint() },
    });
    const certs = chain.map((c) => new X509Certificate(c));
    expect(certs.at(-1)!.fingerprint256).to.equal(new X509Certificate(rootPem).fingerprint256);
    expect(certs[1].subject).to.contain('CN=Mesh Intermediate');
    expect(certs[0].subjectAltName).to.equal('URI:spiffe://cluster.local/ns/shop/sa/billing');
    const lifetime = (Date.parse(certs[0].validTo) - Date.parse(certs[0].validFrom)) / 1000;
    expect(lifetime).to.equal(7200 + 60); // 2 h, notBefore back-dated 60 s for clock skew
    writeFileSync(join(dir, 'leaf.pem'), chain[0]);
    writeFileSync(join(dir, 'untrusted.pem'), chain.slice(1, -1).join(''));
    expect(execFileSync('openssl', ['verify', '-CAfile', join(caDir, 'root-cert.pem'), '-untrusted', join(dir, 'untrusted.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' })).to.contain(': OK');

    let refused: unknown;
    try {
      await requestCertificate({ address: control.addresses.xds, rootCertsPem: rootPem }, {
        csrPem: buildCsr(key, 'spiffe://cluster.local/ns/shop/sa/billing'), validitySeconds: 4 * 3600, credential: { kind: 'token', token: await mint() },
      });
    } catch (err) {
      refused = err;
    }
    expect(isRefusal(refused), String(refused)).to.equal(true);
    expect(String((refused as Error).message)).to.contain('validity_duration 14400s is over the maximum of 10800s');
  });

  describe('POST /validate over HTTPS', () => {
    const url = (): string => `https://${control.addresses.webhook}/validate`;

    it('admits a valid VirtualService and echoes the uid', async () => {
      const r = await post(url(), review('uid-good', 'CREATE', GOOD_VS), rootPem);
      expect(r.status).to.equal(200);
      expect(r.json).to.deep.equal({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-good', allowed: true } });
    });

    it('refuses an invalid one with every violation and its field path, in the decoder\'s words', async () => {
      const r = await post(url(), review('uid-bad', 'UPDATE', BAD_VS), rootPem);
      expect(r.status).to.equal(200);
      const response = r.json.response as { uid: string; allowed: boolean; status: { code: number; message: string; details: { causes: { field: string; message: string }[] } } };
      expect(response.uid).to.equal('uid-bad');
      expect(response.allowed).to.equal(false);
      expect(response.status.code).to.equal(400);
      const decoded = decodeResource(BAD_VS);
      if (decoded.ok) throw new Error('BAD_VS decoded');
      expect(decoded.violations.length).to.be.greaterThan(1);
      expect(response.status.message).to.equal(`VirtualService shop/billing is invalid (${decoded.violations.length} problems): ${decoded.violations.map(formatViolation).join('; ')}`);
      expect(response.status.details.causes.map((c) => c.field)).to.deep.equal(decoded.violations.map((v) => v.path));
      expect(response.status.message).to.contain('spec.http[0].route[1].wieght');
    });

    it('admits DELETE and kinds Trellis does not own without decoding them', async () => {
      const del = await post(url(), review('uid-del', 'DELETE', null), rootPem);
      expect(del.json.response).to.deep.equal({ uid: 'uid-del', allowed: true });
      const dep = await post(url(), review('uid-dep', 'CREATE', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { nonsense: true } }, { group: 'apps', version: 'v1', kind: 'Deployment' }), rootPem);
      expect(dep.json.response).to.deep.equal({ uid: 'uid-dep', allowed: true });
    });

    it('answers 400 with a clear message for a malformed body', async () => {
      const notJson = await post(url(), '{"apiVersion": ', rootPem);
      expect(notJson.status).to.equal(400);
      expect(notJson.json).to.deep.equal({ code: 'TRELLIS_ERR_HTTP_BODY', message: 'request body is not valid JSON' });
      const notReview = await post(url(), JSON.stringify({ apiVersion: 'v1', kind: 'Pod' }), rootPem);
      expect(notReview.status).to.equal(400);
      expect(notReview.json).to.deep.equal({ code: 'TRELLIS_ERR_ADMISSION_REVIEW', message: 'expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got "v1" "Pod"' });
      const noUid = await post(url(), JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { operation: 'CREATE' } }), rootPem);
      expect(noUid.status).to.equal(400);
      expect((noUid.json as { message: string }).message).to.equal('request.uid: required field is missing');
    });
  });

  it('exits 1 with one TRELLIS_ERR_CA_* line when --ca-dir is unusable', async () => {
    const p = start(CONTROL_BIN, ['--state-dir', join(dir, 'bad-state'), '--ca-dir', join(dir, 'no-such-dir'), '--listen-xds', '127.0.0.1:0', '--listen-http', 'off']);
    expect(await p.exit).to.equal(1);
    expect(p.output().trim()).to.equal(`TRELLIS_ERR_CA_FILE: ${join(dir, 'no-such-dir', 'ca-key.pem')}: cannot read the CA key: ENOENT: no such file or directory, stat '${join(dir, 'no-such-dir', 'ca-key.pem')}'`);
  });

  // Last (mocha runs a describe's own tests before its nested describes).
  describe('shutdown', () => {
    it('sends STOPPING=1 on SIGTERM and exits 0', async () => {
      expect(await control.stop()).to.equal(0);
      await eventually('STOPPING=1', () => receiver.messages.includes('STOPPING=1'));
    });
  });
});
