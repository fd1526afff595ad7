import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../src/ca/authority.js';

/** `--ca-dir` pointing at a Kubernetes Secret volume: files behind `..data`, the key group-readable (fsGroup). */
describe('CA: plug-in directory mounted from a Kubernetes Secret', function () {
  this.timeout(20_000);
  let dir: string;
  let mount: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-ca-mount-'));
    const gen = join(dir, 'gen');
    mkdirSync(gen);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '2',
      '-subj', '/CN=Mounted Root', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: gen, stdio: 'ignore' });
    // The atomic-writer layout: ..<timestamp>/files, ..data → it, and top-level links to ..data/<file>.
    mount = join(dir, 'cacerts');
    mkdirSync(join(mount, '..2026_11_22_09_00_00.1'), { recursive: true });
    for (const f of ['ca-key.pem', 'ca-cert.pem']) copyFileSync(join(gen, f), join(mount, '..2026_11_22_09_00_00.1', f));
    copyFileSync(join(gen, 'ca-cert.pem'), join(mount, '..2026_11_22_09_00_00.1', 'root-cert.pem'));
    symlinkSync('..2026_11_22_09_00_00.1', join(mount, '..data'));
    for (const f of ['ca-key.pem', 'ca-cert.pem', 'root-cert.pem']) symlinkSync(join('..data', f), join(mount, f));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a group-readable key (0440) there, still refuses one readable by others; outside a Secret volume 0440 is refused', async () => {
    const key = join(mount, '..2026_11_22_09_00_00.1', 'ca-key.pem');
    chmodSync(key, 0o440);
    const ca = await CertificateAuthority.open({ stateDir: join(dir, 's1'), trustDomain: 'cluster.local', pluginDir: mount });
    expect(ca.source).to.equal('plugin-dir');
    chmodSync(key, 0o444);
    let err: unknown;
    try { await CertificateAuthority.open({ stateDir: join(dir, 's2'), trustDomain: 'cluster.local', pluginDir: mount }); } catch (e) { err = e; }
    expect(err).to.have.property('code', 'TRELLIS_ERR_CA_KEY_PERMISSIONS');
    const plain = join(dir, 'plain');
    mkdirSync(plain);
    for (const f of ['ca-key.pem', 'ca-cert.pem', 'root-cert.pem']) copyFileSync(join(mount, f), join(plain, f));
    chmodSync(join(plain, 'ca-key.pem'), 0o440);
    err = undefined;
    try { await CertificateAuthority.open({ stateDir: join(dir, 's3'), trustDomain: 'cluster.local', pluginDir: plain }); } catch (e) { err = e; }
    expect(err).to.have.property('code', 'TRELLIS_ERR_CA_KEY_PERMISSIONS');
    expect((err as Error).message).to.contain('mode 440 lets group/other read the CA key');
  });
});
