import { expect } from 'chai';
import { AGENT_SETTINGS, expectedSpiffeId, parseDurationSeconds, parseHostPort, parseMeshSettings, resolveAgentOptions } from '../src/index.js';
import { backoffDelay, renewalTime } from '../src/certificate-manager.js';

const MESH = `# written by trellisctl vm configure
apiVersion: trellis.dev/v1alpha1
kind: VmMesh
xdsAddress: "cp.example.com:15012"
trustDomain: "cluster.local"
namespace: "shop"
serviceAccount: "billing"
workloadGroup: "billing-vms"
clusterId: "Kubernetes"
network: ""
`;

describe('node-agent: mesh.yaml', () => {
  it('parses the file trellisctl writes', () => {
    const mesh = parseMeshSettings(MESH);
    expect(mesh).to.deep.equal({
      xdsAddress: 'cp.example.com:15012', trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'billing',
      workloadGroup: 'billing-vms', clusterId: 'Kubernetes', network: '',
    });
    expect(Object.isFrozen(mesh)).to.equal(true);
    expect(expectedSpiffeId(mesh)).to.equal('spiffe://cluster.local/ns/shop/sa/billing');
  });

  it('accepts plain and single-quoted values and an IPv6 address', () => {
    const mesh = parseMeshSettings("xdsAddress: [::1]:15012\ntrustDomain: td\nnamespace: 'ns'\nserviceAccount: sa\n");
    expect(mesh.xdsAddress).to.equal('[::1]:15012');
    expect(mesh.namespace).to.equal('ns');
  });

  it('reports every violation with its line or field', () => {
    let message = '';
    try {
      parseMeshSettings('kind: Other\nxdsAddress: nope\nnamespace: Bad_NS\nbogus: 1\nnot a pair\n', 'b/mesh.yaml');
    } catch (e) {
      expect((e as { code: string }).code).to.equal('TRELLIS_ERR_CONFIG');
      message = (e as Error).message;
    }
    expect(message).to.contain('b/mesh.yaml:5: expected "key: value"');
    expect(message).to.contain('b/mesh.yaml: kind: must be VmMesh');
    expect(message).to.contain('b/mesh.yaml: bogus: unknown key');
    expect(message).to.contain('trustDomain: required');
    expect(message).to.contain('serviceAccount: required');
    expect(message).to.contain('xdsAddress: "nope" is not HOST:PORT');
    expect(message).to.contain('namespace: "Bad_NS" is not a DNS-1123 name');
  });
});

describe('node-agent: options', () => {
  it('declares one env var per flag, each with a default and a description', () => {
    const envs = AGENT_SETTINGS.map((s) => s.env);
    expect(new Set(envs).size).to.equal(envs.length);
    for (const s of AGENT_SETTINGS) {
      expect(s.env).to.match(/^TRELLIS_[A-Z_]+$/);
      expect(s.description.length).to.be.greaterThan(10);
    }
  });

  it('flag beats environment beats default', () => {
    const o = resolveAgentOptions({ stateDir: '/flag' }, { TRELLIS_STATE_DIR: '/env', TRELLIS_SDS_SOCKET: '/env/sock' });
    expect(o.stateDir).to.equal('/flag');
    expect(o.sdsSocket).to.equal('/env/sock');
    expect(o.listenHttp).to.equal('127.0.0.1:15020');
    expect(o.bundle).to.equal('/etc/trellis');
  });

  it('parses durations and HOST:PORT', () => {
    expect(parseDurationSeconds('90', 'x')).to.equal(90);
    expect(parseDurationSeconds('10m', 'x')).to.equal(600);
    expect(parseDurationSeconds('1h30m', 'x')).to.equal(5400);
    expect(() => parseDurationSeconds('10 minutes', '--cert-ttl')).to.throw(/--cert-ttl: "10 minutes" is not a duration/);
    expect(parseHostPort('127.0.0.1:15020', 'x')).to.deep.equal({ host: '127.0.0.1', port: 15020 });
    expect(parseHostPort('[::1]:80', 'x')).to.deep.equal({ host: '::1', port: 80 });
    expect(() => parseHostPort('host:99999', '--listen-http')).to.throw(/--listen-http/);
  });
});

describe('node-agent: rotation schedule', () => {
  it('renews between 45 % and 55 % of the life that remained when the certificate was obtained', () => {
    // A CA backdates notBefore; the schedule runs from when the host obtained the certificate.
    const cert = { notBefore: 1_000_000 - 60_000, obtainedAt: 1_000_000, notAfter: 1_000_000 + 20_000 };
    expect(renewalTime(cert, () => 0)).to.equal(1_009_000);
    expect(renewalTime(cert, () => 0.5)).to.equal(1_010_000);
    expect(renewalTime(cert, () => 0.999999)).to.be.closeTo(1_011_000, 1);
  });

  it('backs off exponentially with jitter up to the cap', () => {
    expect(backoffDelay(0, 1000, 30_000, () => 1)).to.equal(1000);
    expect(backoffDelay(3, 1000, 30_000, () => 1)).to.equal(8000);
    expect(backoffDelay(10, 1000, 30_000, () => 1)).to.equal(30_000);
    expect(backoffDelay(10, 1000, 30_000, () => 0)).to.equal(15_000);
  });
});
