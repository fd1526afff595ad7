import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import type { Resource } from '@trellis/model';
import { parseResourceText } from '@trellis/registry-adapters/file';
import { FakeKubernetes } from '@trellis/testing';
import { Aggregate } from '../src/aggregate/aggregate.js';
import { liveFindings } from '../src/analyze/live.js';
import { planRegistries, registryDeclarations, RegistryManager } from '../src/registries/index.js';
import { snapshotChange, svc } from './aggregate-fixtures.js';

function registries(yaml: string): Resource[] {
  const parsed = parseResourceText(yaml, 'registries.yaml', { source: { kind: 'file', shard: 'test' } });
  expect(parsed.problems, JSON.stringify(parsed.problems)).to.deep.equal([]);
  return [...parsed.resources];
}

const reg = (name: string, spec: string): string => `apiVersion: trellis.dev/v1alpha1\nkind: Registry\nmetadata: { name: ${name} }\nspec:\n${spec.trim().split('\n').map((l) => `  ${l.trim()}`).join('\n')}\n`;

function call(token?: string): Parameters<ReturnType<RegistryManager['authenticator']>['authenticate']>[0] {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return { metadata, getPeer: () => '127.0.0.1:1', getAuthContext: () => ({}) } as never;
}

describe('registries: planning Registry resources', () => {
  const env = { env: { CONSUL_TOKEN: 'tok-1' }, baseDir: '/cfg' };

  it('one Consul shard per datacenter, a Eureka shard named after the resource, two Kubernetes shards', () => {
    const { plans, problems } = planRegistries(registries([
      reg('c', 'type: consul\naddress: http://127.0.0.1:8500\ndatacenters: [dc1, dc2]\ncredentials: { tokenEnv: CONSUL_TOKEN }\npriority: 3'),
      reg('eu', 'type: eureka\naddresses: [http://a/eureka, http://b/eureka]'),
      reg('k', 'type: kubernetes\naddress: http://127.0.0.1:6443\nclusterId: east\nnetwork: n1'),
      reg('f', 'type: file\npath: extra'),
    ].join('---\n')), env);
    expect(problems).to.deep.equal([]);
    expect(plans.map((p) => `${p.shard}/${p.kind}/${p.rank ?? '-'}`)).to.deep.equal([
      'consul:dc1/consul/3', 'consul:dc2/consul/3', 'eureka:eu/eureka/-', 'file:/cfg/extra/file/-', 'kubernetes:east/kubernetes/-', 'kubernetes:east/istio/kubernetes/-',
    ]);
    expect(plans.find((p) => p.shard === 'kubernetes:east')!.tokenReviewer).to.be.a('function');
    expect(plans.find((p) => p.shard === 'consul:dc1')!.create().shard).to.equal('consul:dc1');
  });

  it('restarts on a credential change (fingerprint), and reports unreadable credentials without their value', () => {
    const yaml = registries(reg('c', 'type: consul\naddress: http://127.0.0.1:8500\ncredentials: { tokenEnv: CONSUL_TOKEN }'));
    const a = planRegistries(yaml, env).plans[0];
    const b = planRegistries(yaml, { ...env, env: { CONSUL_TOKEN: 'tok-2' } }).plans[0];
    expect(a.fingerprint).to.not.equal(b.fingerprint);
    expect(JSON.stringify(a)).to.not.contain('tok-1');
    const missing = planRegistries(yaml, { ...env, env: {} });
    expect(missing.plans).to.deep.equal([]);
    expect(missing.problems[0].message).to.equal('credentials.tokenEnv: environment variable CONSUL_TOKEN is not set');
    const file = planRegistries(registries(reg('c', 'type: consul\naddress: http://x:8500\ncredentials: { tokenFile: secret }')), {
      ...env, readFile: () => { throw Object.assign(new Error('nope'), { code: 'ENOENT' }); },
    });
    expect(file.problems[0].message).to.equal('credentials.tokenFile: cannot read /cfg/secret (ENOENT)');
  });

  it('reads the Registry documents beside the MeshConfig of a --mesh-config file', () => {
    const text = `apiVersion: trellis.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: mesh }\nspec: { trustDomain: example.org }\n---\n${reg('c', 'type: consul\naddress: http://x:8500')}`;
    const found = registryDeclarations('/etc/trellis/mesh.yaml', () => text);
    expect(found.map((r) => `${r.kind}/${r.metadata.name}`)).to.deep.equal(['Registry/c']);
    expect(() => registryDeclarations('/m.yaml', () => `${reg('c', 'type: consul')}`)).to.throw(/m\.yaml:4: spec\.address: required field is missing/);
  });

  it('refuses a shard id declared twice', () => {
    const { plans, problems } = planRegistries(registries([
      reg('a', 'type: consul\naddress: http://one:8500'),
      reg('b', 'type: consul\naddress: http://two:8500'),
    ].join('---\n')), env);
    expect(plans.map((p) => p.declaredBy)).to.deep.equal(['Registry/default/a']);
    expect(problems).to.deep.equal([{ declaredBy: 'Registry/default/b', shard: 'consul:dc1', message: 'shard consul:dc1 is already declared by Registry/default/a' }]);
  });
});

describe('registries: the manager', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trellis-regs-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const until = async (what: string, pred: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(pred(), what).to.equal(true);
  };

  it('starts, restarts on change and stops adapters; a removed registry drops its shard', async () => {
    writeFileSync(join(dir, 'se.yaml'), 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: a }\nspec: { hosts: [a.example.com], ports: [{ number: 80, name: http, protocol: HTTP }] }\n');
    const agg = new Aggregate({ onChange: () => {} });
    const m = new RegistryManager({ aggregate: agg, env: {}, baseDir: dir });
    try {
      const file = registries(reg('extra', 'type: file\npath: .'));
      m.reconcile(file);
      expect(m.shards).to.deep.equal([`file:${dir}`]);
      await until('file shard synced', () => agg.shards().some((s) => s.shard === `file:${dir}` && s.received));
      expect(agg.view(['file']).services.map((s) => s.service.hostname)).to.deep.equal(['a.example.com']);
      m.reconcile(registries(reg('extra', 'type: file\npath: .\npriority: 9')));
      await until('restarted shard synced', () => agg.shards().some((s) => s.shard === `file:${dir}` && s.received));
      m.reconcile([]);
      expect(m.shards).to.deep.equal([]);
      expect(agg.shards()).to.deep.equal([]);
    } finally {
      await m.close();
    }
  });

  it('a registry that cannot start is a stale shard with the reason, which does not hold the mesh back', async () => {
    const agg = new Aggregate({ onChange: () => {} });
    const m = new RegistryManager({ aggregate: agg, env: {}, baseDir: dir });
    m.reconcile(registries(reg('c', 'type: consul\naddress: http://127.0.0.1:1\ncredentials: { tokenEnv: NOPE }')));
    const s = agg.shards().find((x) => x.shard === 'registry:default/c')!;
    expect(s.status.state).to.equal('stale');
    expect(s.status.lastError).to.contain('NOPE is not set');
    expect(agg.allReceived()).to.equal(true);
    m.reconcile([]);
    expect(agg.shards()).to.deep.equal([]);
    await m.close();
  });

  it('the CA authenticator asks TokenReview of each Kubernetes registry; not mine without one', async () => {
    const kube = await new FakeKubernetes({ token: 'admin' }).start();
    kube.tokens.set('pod-jwt', { username: 'system:serviceaccount:shop:cart' });
    const agg = new Aggregate({ onChange: () => {} });
    const m = new RegistryManager({ aggregate: agg, env: { KT: 'admin' }, baseDir: dir });
    try {
      const auth = m.authenticator();
      expect(await auth.authenticate(call('pod-jwt'))).to.equal(null);
      m.reconcile(registries(reg('k', `type: kubernetes\naddress: ${kube.url}\nclusterId: c1\ncredentials: { tokenEnv: KT }`)));
      const id = await auth.authenticate(call('pod-jwt'));
      expect(id).to.include({ namespace: 'shop', serviceAccount: 'cart', via: 'kubernetes-token' });
      expect(await auth.authenticate(call())).to.equal(null);
      expect(await auth.authenticate(call('trellis-jt.abc'))).to.equal(null);
      let refused: unknown;
      try { await auth.authenticate(call('forged')); } catch (err) { refused = err; }
      expect((refused as { code?: string }).code).to.equal('TRELLIS_ERR_CA_AUTHENTICATOR_REFUSED');
    } finally {
      await m.close();
      await kube.close();
    }
  });
});

describe('registries: aggregate ranks and analyze --control findings', () => {
  it('a Registry priority outranks the kind order', () => {
    const agg = new Aggregate({ onChange: () => {} });
    agg.addShard('kubernetes:c1', 'kubernetes');
    agg.addShard('eureka:e', 'eureka', { rank: 0 });
    agg.apply('kubernetes:c1', snapshotChange('kubernetes:c1', 'kubernetes', [svc('x.example.com', 'kubernetes:c1', 'kubernetes', { ports: [{ number: 80, protocol: 'HTTP', name: 'http' }] })]));
    agg.apply('eureka:e', snapshotChange('eureka:e', 'eureka', [svc('x.example.com', 'eureka:e', 'eureka', { ports: [{ number: 80, protocol: 'GRPC', name: 'grpc' }] })]));
    const v = agg.view(['kubernetes', 'file', 'consul', 'eureka']);
    expect(v.conflicts.map((c) => `${c.field}:${c.winner}`)).to.deep.equal(['protocol:eureka:e']);
    agg.removeShard('eureka:e');
    expect(agg.view(['kubernetes']).conflicts).to.deep.equal([]);
  });

  it('turns live conflicts, stale shards and shard problems into findings', () => {
    const f = liveFindings(
      [{ hostname: 'x.example.com', namespace: 'default', field: 'ports', values: [{ shard: 'file:/c', value: [80] }, { shard: 'consul:dc1', value: [8080] }], winner: 'file:/c' }],
      [{ shard: 'consul:dc1', state: 'stale', lastError: 'connection refused', staleSince: 'T', problems: [{ file: 'consul:web', path: 'Service.Meta.protocol', message: 'unknown protocol' }] }],
    );
    expect(f.map((x) => `${x.level} ${x.code} ${x.file} ${x.path}`)).to.deep.equal([
      'warning TRELLIS_A0201 live:consul:dc1 ', 'warning TRELLIS_A0202 live:consul:dc1 Service.Meta.protocol', 'warning TRELLIS_A0200 live:default/x.example.com ports',
    ]);
    expect(f[2].message).to.equal('registry shards disagree on ports: file:/c=[80] vs consul:dc1=[8080]; file:/c wins');
  });
});
