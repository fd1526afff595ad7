import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeCa, SdsTestClient, fetchSecrets } from '@trellis/testing';
import { buildCsr, generateKey, requestCertificate, resolveGid, SdsServer, toIdentity, trustBundle, type Identity } from '../src/index.js';

async function issue(ca: FakeCa): Promise<Identity> {
  const keyPem = await generateKey();
  const chain = await requestCertificate({ address: ca.address, rootCertsPem: ca.rootCertPem }, {
    csrPem: buildCsr(keyPem, 'spiffe://cluster.local/ns/shop/sa/billing'), validitySeconds: 0,
    credential: { kind: 'token', token: ca.addToken('shop', 'billing') },
  });
  return toIdentity(keyPem, chain);
}

describe('node-agent: SDS server on a Unix socket', function () {
  this.timeout(20_000);
  let ca: FakeCa;
  let first: Identity;
  let second: Identity;
  let dir: string;
  let socket: string;
  let server: SdsServer;
  let clients: number[];
  const open: SdsTestClient[] = [];

  before(async () => {
    ca = new FakeCa();
    await ca.listen();
    first = await issue(ca);
    second = await issue(ca);
    await ca.close();
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-sds-'));
    socket = join(dir, 'sds', 'socket');
    clients = [];
    server = new SdsServer({ socketPath: socket, observer: { sdsClients: (n) => clients.push(n) } });
    server.update({ identity: first, rootsPem: trustBundle(ca.rootCertPem, first) });
    await server.listen();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const client = (names: string[]): SdsTestClient => {
    const c = new SdsTestClient(socket, names);
    open.push(c);
    return c;
  };

  it('creates the directory 0750 and the socket 0660', () => {
    expect(statSync(join(dir, 'sds')).mode & 0o777).to.equal(0o750);
    expect(statSync(socket).isSocket()).to.equal(true);
    expect(statSync(socket).mode & 0o777).to.equal(0o660);
  });

  it('serves default (chain and key) and ROOTCA on one stream, then stays quiet after the ACK', async () => {
    const c = client(['default', 'ROOTCA']);
    const [response] = await c.waitFor(1);
    const byName = Object.fromEntries(response!.secrets.map((s) => [s.name, s]));
    expect(byName.default!.certificateChain).to.equal(first.chainPem[0]);
    expect(byName.default!.privateKey).to.equal(first.keyPem);
    expect(byName.ROOTCA!.trustedCa!.replace(/\s+/g, '')).to.equal(ca.rootCertPem.replace(/\s+/g, ''));
    expect(server.clients).to.equal(1);
    // The ACK is answered by nothing; a FetchSecrets round trip proves the server has processed it.
    await fetchSecrets(socket, ['default']);
    expect(c.responses).to.have.length(1);
  });

  it('pushes a rotation to every connected stream at once with a new version', async () => {
    const a = client(['default']);
    const b = client(['ROOTCA']);
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    server.update({ identity: second, rootsPem: trustBundle(ca.rootCertPem, second) });
    const [ra, rb] = await Promise.all([a.waitFor(2), b.waitFor(2)]);
    expect(ra![1]!.secrets[0]!.certificateChain).to.equal(second.chainPem[0]);
    expect(ra![1]!.version).to.not.equal(ra![0]!.version);
    expect(rb![1]!.secrets[0]!.name).to.equal('ROOTCA');
  });

  it('gives unknown names nothing, and answers when a known name is added', async () => {
    const c = client(['file-cert:/etc/x.pem']);
    await fetchSecrets(socket, ['default']);
    expect(c.responses).to.have.length(0);
    c.request(['file-cert:/etc/x.pem', 'default']);
    const [response] = await c.waitFor(1);
    expect(response!.secrets.map((s) => s.name)).to.deep.equal(['default']);
  });

  it('does not resend after a NACK until the next rotation', async () => {
    const c = client(['default']);
    c.nack = true;
    await c.waitFor(1);
    await fetchSecrets(socket, ['ROOTCA']);
    expect(c.responses).to.have.length(1);
    c.nack = false;
    server.update({ identity: second, rootsPem: ca.rootCertPem });
    await c.waitFor(2);
  });

  it('resolves the socket group by name or gid, and names an unknown group', () => {
    const groups = join(dir, 'group');
    writeFileSync(groups, 'root:x:0:\nenvoy:x:1337:proxy\n');
    expect(resolveGid('envoy', groups)).to.equal(1337);
    expect(resolveGid('42', groups)).to.equal(42);
    expect(() => resolveGid('nobody-here', groups)).to.throw(/socket group "nobody-here" is not in/);
  });

  it('gives the socket and its directory the configured group', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const path = join(dir, 'grp', 'socket');
    const grouped = new SdsServer({ socketPath: path, socketGroup: '1337' });
    grouped.update({ identity: first, rootsPem: ca.rootCertPem });
    await grouped.listen();
    try {
      expect(statSync(path).gid).to.equal(1337);
      expect(statSync(join(dir, 'grp')).gid).to.equal(1337);
    } finally {
      await grouped.close();
    }
  });

  it('answers FetchSecrets with the known names only', async () => {
    const secrets = await fetchSecrets(socket, ['ROOTCA', 'nope']);
    expect(secrets.map((s) => s.name)).to.deep.equal(['ROOTCA']);
  });

  it('reports connected clients as streams come and go', async () => {
    const c = client(['default']);
    await c.waitFor(1);
    c.close();
    open.splice(open.indexOf(c), 1);
    const deadline = Date.now() + 5000;
    while (server.clients !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(server.clients).to.equal(0);
    expect(clients).to.deep.equal([1, 0]);
  });
});
