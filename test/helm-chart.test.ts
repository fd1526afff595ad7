/**
 * The Helm chart (deploy/k8s/trellis), proven without Helm (not installable on the build machines):
 *
 * 1. rendered by test/helm-render (Go text/template + sprig, built offline from Debian's golang packages) for the
 *    default values and values-multicluster.yaml;
 * 2. `trellisctl install k8s --values FILE` prints the same objects (its TypeScript template interpreter);
 * 3. every object validated structurally (test/helm-render/k8s-validate.ts), containers' args checked against the
 *    flags the binaries' `--help` lists, the embedded MeshConfig/Registry/agent bundle decoded by Trellis's own
 *    decoders, the CRDs checked against the kinds table;
 * 4. loaded with `kubectl apply --validate=false` into the fake API server (the kinds it serves).
 *
 * Needs `go` (Debian golang-go) with golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v3-dev; skipped
 * with that reason when `go` is missing. The Go build cache lives in $TMPDIR/trellis-helm-render (kept between
 * runs: a cold build takes a few seconds of CPU, a warm one well under one).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parseAllDocuments } from 'yaml';
import { decodeResource, kindTable, SUPPORTED_API_VERSIONS } from '@trellis/model';
import { parseMeshSettings } from '@trellis/node-agent';
import { parseResourceText } from '@trellis/registry-adapters/file';
import { FAKE_ISTIO_RESOURCES, FAKE_KUBE_RESOURCES, FakeKubernetes } from '@trellis/testing';
import { validateObjects, type FlagTable, type K8sObject } from './helm-render/k8s-validate.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHART = join(ROOT, 'deploy', 'k8s', 'trellis');
const TRELLISCTL = join(ROOT, 'packages', 'control', 'bin', 'trellisctl.js');
const HAVE_GO = spawnSync('go', ['version']).status === 0;
const HAVE_KUBECTL = spawnSync('kubectl', ['version', '--client']).status === 0;
const CASES: readonly { readonly name: string; readonly files: readonly string[] }[] = [
  { name: 'default values', files: [] },
  { name: 'values-multicluster.yaml', files: [join(CHART, 'values-multicluster.yaml')] },
];

function parseObjects(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0].message}`);
    const v = doc.toJS() as unknown;
    if (v !== null && v !== undefined) out.push(v as K8sObject);
  }
  return out;
}

function run(cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    // A renderer that fails before reading its input closes the pipe: EPIPE here is not the test's failure.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** `--flag` names a binary's `--help` lists. */
async function helpFlags(bin: string): Promise<ReadonlySet<string>> {
  const r = await run(process.execPath, [join(ROOT, bin), '--help']);
  const flags = new Set((r.stdout + r.stderr).match(/--[a-z][a-z-]*/g) ?? []);
  flags.delete('--help');
  flags.delete('--version');
  if (flags.size < 3) throw new Error(`${bin} --help listed no flags: ${r.stderr}`);
  return flags;
}

const byKind = (objs: readonly K8sObject[], kind: string): K8sObject[] => objs.filter((o) => o.kind === kind);
const one = (objs: readonly K8sObject[], kind: string, name: string): K8sObject => {
  const found = objs.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the render`);
  return found;
};

describe('Helm chart deploy/k8s/trellis (rendered without Helm)', function () {
  this.timeout(120_000);
  const cacheDir = join(tmpdir(), 'trellis-helm-render');
  const renderer = join(cacheDir, 'helm-render');
  const rendered = new Map<string, { go: string; objects: K8sObject[] }>();
  let flags: FlagTable = {};

  before(async function () {
    if (!HAVE_GO) {
      process.stderr.write('helm-chart.test: skipped: `go` is not installed (apt-get install golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev)\n');
      this.skip();
    }
    mkdirSync(cacheDir, { recursive: true });
    const gopath = join(cacheDir, 'gopath');
    const env = { ...process.env, GO111MODULE: 'off', GOPATH: `/usr/share/gocode:${gopath}`, GOCACHE: join(cacheDir, 'cache'), GOFLAGS: '', CGO_ENABLED: '0' };
    const build = await run('go', ['build', '-o', renderer, '.'], { env, cwd: join(ROOT, 'test', 'helm-render') });
    if (build.status !== 0) throw new Error(`building test/helm-render failed (needs golang-github-masterminds-sprig-dev and golang-gopkg-yaml.v3-dev):\n${build.stderr}`);
    for (const c of CASES) {
      const r = await run(renderer, [...c.files.flatMap((f) => ['-f', f]), CHART]);
      if (r.status !== 0) throw new Error(`helm-render ${c.name}: ${r.stderr}`);
      rendered.set(c.name, { go: r.stdout, objects: parseObjects(r.stdout) });
    }
    const [control, proxy, agent] = await Promise.all([
      helpFlags('packages/control/bin/trellis-control.js'),
      helpFlags('packages/proxy/bin/trellis-proxy.js'),
      helpFlags('packages/node-agent/bin/trellis-agent.js'),
    ]);
    flags = { 'trellis-control': control, 'trellis-proxy': proxy, 'trellis-agent': agent };
  });

  for (const c of CASES) {
    describe(c.name, () => {
      it('trellisctl install k8s prints the same objects as the Go renderer (text identical too)', async () => {
        const r = await run(process.execPath, [TRELLISCTL, 'install', 'k8s', ...c.files.flatMap((f) => ['--values', f])]);
        expect(r.stderr).to.equal('');
        expect(r.status).to.equal(0);
        const go = rendered.get(c.name)!;
        expect(parseObjects(r.stdout)).to.deep.equal(go.objects);
        expect(r.stdout).to.equal(go.go);
      });

      it('every object is valid for Kubernetes 1.30 (structure, names, selectors, ports, the binaries\' flags)', () => {
        const { objects } = rendered.get(c.name)!;
        expect(validateObjects(objects, flags)).to.deep.equal([]);
        const kinds = new Set(objects.map((o) => o.kind));
        for (const k of ['CustomResourceDefinition', 'ConfigMap', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Service', 'PodDisruptionBudget', 'ValidatingWebhookConfiguration']) expect(kinds, k).to.include(k);
      });

      it('the control plane: ports 15010 (plaintext, optional)/15012/15014, readiness /ready on 15014, RBAC for the registry, CRDs and TokenReview', () => {
        const { objects } = rendered.get(c.name)!;
        const dep = one(objects, 'Deployment', 'trellis-control') as unknown as { spec: { template: { spec: { containers: { args: string[]; ports: { containerPort: number }[]; readinessProbe: { httpGet: { path: string; port: number } } }[] } } } };
        const ctr = dep.spec.template.spec.containers[0];
        const plaintext = c.files.length === 0; // values-multicluster.yaml turns plaintext xDS off
        expect(ctr.ports.map((p) => p.containerPort).filter((p) => p !== 15017)).to.deep.equal(plaintext ? [15010, 15012, 15014] : [15012, 15014]);
        expect(ctr.args[ctr.args.indexOf('--listen-xds-plaintext') + 1]).to.equal(plaintext ? '0.0.0.0:15010' : 'off');
        expect(ctr.readinessProbe.httpGet).to.deep.equal({ path: '/ready', port: 15014 });
        expect(ctr.args).to.not.include('--config-dir');
        const arg = (f: string): string => ctr.args[ctr.args.indexOf(f) + 1];
        expect(arg('--listen-http')).to.equal('0.0.0.0:15014');
        const role = one(objects, 'ClusterRole', 'trellis-control-trellis-system') as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
        const allowed = (group: string, resource: string, verb: string): boolean => role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
        for (const r of ['services', 'pods', 'nodes']) expect(allowed('', r, 'watch'), r).to.equal(true);
        expect(allowed('discovery.k8s.io', 'endpointslices', 'list')).to.equal(true);
        expect(allowed('authentication.k8s.io', 'tokenreviews', 'create')).to.equal(true);
        for (const crd of byKind(objects, 'CustomResourceDefinition')) {
          const spec = crd.spec as { group: string; names: { plural: string } };
          expect(allowed(spec.group, spec.names.plural, 'watch'), crd.metadata.name).to.equal(true);
        }
        const hook = one(objects, 'ValidatingWebhookConfiguration', 'trellis-control-trellis-system') as unknown as { webhooks: { clientConfig: { service: { path: string } }; failurePolicy: string }[] };
        expect(hook.webhooks[0].clientConfig.service.path).to.equal('/validate');
        expect(hook.webhooks[0].failurePolicy).to.equal('Ignore');
        // The webhook chain is consistent: VWC → Service port 443 → targetPort = the container port trellis-control
        // listens on with --listen-webhook (HTTPS), whose certificate names the Service's DNS name.
        const hookPort = (ctr.ports as { name?: string; containerPort: number }[]).find((p) => p.name === 'https-webhook')!.containerPort;
        expect(arg('--listen-webhook')).to.equal(`0.0.0.0:${hookPort}`);
        const svc = one(objects, 'Service', 'trellis-control') as unknown as { spec: { ports: { name: string; port: number; targetPort: number }[] } };
        expect(svc.spec.ports.find((p) => p.name === 'https-webhook')).to.deep.include({ port: 443, targetPort: hookPort });
        const hookSvc = (hook.webhooks[0].clientConfig as unknown as { service: { name: string; namespace: string; port: number } }).service;
        expect(hookSvc.port).to.equal(443);
        expect(arg('--webhook-dns-names').split(',')).to.include(`${hookSvc.name}.${hookSvc.namespace}.svc`);
        expect(arg('--workload-cert-ttl')).to.equal('24h');
        expect(arg('--max-workload-cert-ttl')).to.equal('7d');
      });

      it('the mesh ConfigMap holds a MeshConfig and Registry resources that Trellis decodes; gateways run --mode gateway', () => {
        const { objects } = rendered.get(c.name)!;
        const cm = one(objects, 'ConfigMap', 'trellis-mesh') as unknown as { data: Record<string, string> };
        const mesh = parseResourceText(cm.data['mesh.yaml'], 'mesh.yaml');
        expect(mesh.problems).to.deep.equal([]);
        expect(mesh.resources.map((r) => r.kind)).to.deep.equal(['MeshConfig']);
        const regs = parseResourceText(cm.data['registries.yaml'], 'registries.yaml');
        expect(regs.problems).to.deep.equal([]);
        expect(regs.resources.every((r) => r.kind === 'Registry')).to.equal(true);
        for (const o of objects) {
          const group = o.apiVersion.split('/')[0];
          if (group in SUPPORTED_API_VERSIONS) {
            const d = decodeResource(o);
            expect(d.ok, `${o.kind}/${o.metadata.name}: ${JSON.stringify(d.ok ? [] : d.violations)}`).to.equal(true);
          }
        }
        const gateways = byKind(objects, 'Deployment').filter((d) => d.metadata.name.endsWith('gateway'));
        expect(gateways.length).to.be.greaterThan(0);
        for (const g of gateways) {
          const args = (g.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0].args;
          expect(args.slice(0, 2)).to.deep.equal(['--mode', 'gateway']);
        }
      });
    });
  }

  it('multicluster: east-west gateway on 15443 (AUTO_PASSTHROUGH Gateway), network labels, remote kubeconfig, node-agent DaemonSet', () => {
    const { objects } = rendered.get('values-multicluster.yaml')!;
    const svc = one(objects, 'Service', 'trellis-eastwestgateway') as unknown as { spec: { ports: { port: number }[] }; metadata: { labels: Record<string, string> } };
    expect(svc.spec.ports.map((p) => p.port)).to.include(15443);
    expect(svc.metadata.labels['topology.istio.io/network']).to.equal('net-east');
    const gw = one(objects, 'Gateway', 'trellis-cross-network') as unknown as { spec: { servers: { port: { number: number }; tls: { mode: string } }[] } };
    expect(gw.spec.servers[0].port.number).to.equal(15443);
    expect(gw.spec.servers[0].tls.mode).to.equal('AUTO_PASSTHROUGH');
    expect(objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'trellis-egressgateway')).to.equal(false);
    const ds = one(objects, 'DaemonSet', 'trellis-agent');
    expect(ds.metadata.namespace).to.equal('trellis-system');
    const bundle = one(objects, 'ConfigMap', 'trellis-agent-bundle') as unknown as { data: Record<string, string> };
    const settings = parseMeshSettings(bundle.data['mesh.yaml']);
    expect(settings).to.include({ xdsAddress: 'trellis-control.trellis-system.svc:15012', namespace: 'trellis-system', network: 'net-east', clusterId: 'east' });
    const ctrl = one(objects, 'Deployment', 'trellis-control') as unknown as { spec: { replicas: number; template: { spec: { volumes: { name: string; secret?: { secretName: string } }[] } } } };
    expect(ctrl.spec.replicas).to.equal(2);
    expect(ctrl.spec.template.spec.volumes.find((v) => v.name === 'remote-west')?.secret?.secretName).to.equal('trellis-remote-west');
    const cm = one(objects, 'ConfigMap', 'trellis-mesh') as unknown as { data: Record<string, string> };
    const regs = parseResourceText(cm.data['registries.yaml'], 'registries.yaml').resources as unknown as { spec: { kubeconfig?: string } }[];
    expect(regs.map((r) => r.spec.kubeconfig)).to.deep.equal([undefined, '/etc/trellis/remote/west/kubeconfig']);
  });

  it('the CRDs: the ten Istio kinds (v1 storage, v1beta1 and v1alpha3 served) and trellis.dev MeshConfig, Registry', () => {
    const { objects } = rendered.get('default values')!;
    const crds = byKind(objects, 'CustomResourceDefinition') as unknown as { spec: { group: string; scope: string; names: { kind: string }; versions: { name: string; served: boolean; storage: boolean }[] } }[];
    expect(crds.map((c) => c.spec.names.kind).sort()).to.deep.equal(Object.keys(kindTable()).sort());
    const table = kindTable();
    for (const c of crds) {
      const kind = c.spec.names.kind as keyof typeof table;
      expect(c.spec.group, kind).to.equal(table[kind].group);
      expect(c.spec.scope).to.equal('Namespaced');
      expect(c.spec.versions.map((v) => v.name), kind).to.deep.equal(SUPPORTED_API_VERSIONS[table[kind].group]);
      expect(c.spec.versions.filter((v) => v.storage).map((v) => v.name)).to.deep.equal([SUPPORTED_API_VERSIONS[table[kind].group][0]]);
      expect(c.spec.versions.every((v) => v.served)).to.equal(true);
    }
  });

  it('the template subset (else if, range over maps and lists, with/else, variables, trim markers, quoting): both renderers print the same text', async () => {
    const fixture = join(ROOT, 'test', 'helm-render', 'fixture');
    const go = await run(renderer, [fixture]);
    expect(go.status, go.stderr).to.equal(0);
    const ts = await run(process.execPath, [TRELLISCTL, 'install', 'k8s', '--chart', fixture]);
    expect(ts.stderr).to.equal('');
    expect(ts.stdout).to.equal(go.stdout);
    // spot checks that the fixture exercises what it claims
    expect(go.stdout).to.include('not-no: true').and.include('emptyRange: else').and.include('withElse: yes').and.include('  alpha: 2 off\n  zeta: 1 on');
    expect(go.stdout).to.include('"on": false'); // YAML 1.1 booleans are quoted by both toYaml implementations
  });

  it('the validator refuses broken objects (it is not vacuous)', () => {
    const { objects } = rendered.get('default values')!;
    const clone = (): K8sObject[] => JSON.parse(JSON.stringify(objects)) as K8sObject[];
    const control = (objs: K8sObject[]): { spec: { selector: { matchLabels: Record<string, string> }; template: { spec: { containers: { args: string[]; ports: { containerPort: number }[] }[] } } } } =>
      one(objs, 'Deployment', 'trellis-control') as never;
    const cases: [string, (objs: K8sObject[]) => void, RegExp][] = [
      ['unknown flag', (o) => control(o).spec.template.spec.containers[0].args.push('--config-file', 'x'), /--config-file is not a flag of trellis-control/],
      ['selector mismatch', (o) => (control(o).spec.selector.matchLabels.app = 'other'), /must be non-empty and match spec.template.metadata.labels/],
      ['port out of range', (o) => (control(o).spec.template.spec.containers[0].ports[0].containerPort = 70000), /70000 is not in 1-65535/],
      ['bad name', (o) => (one(o, 'ConfigMap', 'trellis-mesh').metadata.name = 'Trellis_Mesh'), /is not a valid DNS-1123 subdomain/],
      ['unknown kind', (o) => (one(o, 'ServiceAccount', 'trellis-control').apiVersion = 'v2'), /v2 ServiceAccount is not served/],
      ['cluster-scoped with namespace', (o) => (one(o, 'ClusterRole', 'trellis-control-trellis-system').metadata.namespace = 'x'), /a cluster-scoped object has no namespace/],
    ];
    for (const [what, mutate, want] of cases) {
      const objs = clone();
      mutate(objs);
      const problems = validateObjects(objs, flags);
      expect(problems.join('\n'), what).to.match(want);
    }
  });

  it('a missing required value fails the same way in both renderers (exit 1, the message)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-helm-'));
    try {
      const file = join(dir, 'values.yaml');
      writeFileSync(file, 'nodeAgent:\n  enabled: true\n');
      const ts = await run(process.execPath, [TRELLISCTL, 'install', 'k8s', '--values', file]);
      expect(ts.status).to.equal(1);
      expect(ts.stdout).to.equal('');
      expect(ts.stderr).to.match(/^TRELLIS_ERR_TEMPLATE: node-agent\.yaml:\d+: nodeAgent\.joinTokenSecret is required when nodeAgent\.enabled/);
      const go = await run(renderer, ['-f', file, CHART]);
      expect(go.status).to.equal(1);
      expect(go.stderr).to.include('nodeAgent.joinTokenSecret is required when nodeAgent.enabled');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads through kubectl apply --validate=false into the fake API server (the kinds it serves)', async function () {
    if (!HAVE_KUBECTL) this.skip();
    const served = new Set([...FAKE_KUBE_RESOURCES, ...FAKE_ISTIO_RESOURCES].map((r) => `${r.group ? `${r.group}/` : ''}${r.version} ${r.kind}`));
    // One fresh API server per values file (two clusters): re-applying changed objects would send strategic-merge
    // patches with `$setElementOrder` directives, which the fake applies as plain JSON merge patches.
    for (const c of CASES) {
      const fake = new FakeKubernetes();
      await fake.start();
      const dir = mkdtempSync(join(tmpdir(), 'trellis-helm-'));
      try {
        writeFileSync(join(dir, 'kubeconfig'), fake.kubeconfig());
        const env = { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), HOME: dir };
        const { objects } = rendered.get(c.name)!;
        const loadable = objects.filter((o) => served.has(`${o.apiVersion} ${o.kind}`));
        const notServed = [...new Set(objects.filter((o) => !served.has(`${o.apiVersion} ${o.kind}`)).map((o) => `${o.apiVersion} ${o.kind}`))].sort();
        // The fake serves only what the registry adapters read; these kinds are validated structurally above.
        expect(notServed, c.name).to.include.members(['apps/v1 Deployment', 'apiextensions.k8s.io/v1 CustomResourceDefinition', 'rbac.authorization.k8s.io/v1 ClusterRole']);
        const input = loadable.map((o) => JSON.stringify(o)).join('\n');
        const r = await run('kubectl', ['apply', '--validate=false', '-f', '-'], { env, input });
        expect(r.stderr, c.name).to.equal('');
        expect(r.status).to.equal(0);
        for (const o of loadable) {
          const got = fake.get(o.kind, o.metadata.name, o.metadata.namespace);
          expect(got, `${o.kind}/${o.metadata.name}`).to.not.equal(undefined);
          const { metadata: gotMeta, ...gotRest } = got!;
          const { metadata: wantMeta, ...wantRest } = o;
          expect(gotRest).to.deep.include(wantRest);
          expect(gotMeta.labels).to.deep.equal(wantMeta.labels);
        }
        expect(loadable.length, c.name).to.be.greaterThan(3);
      } finally {
        await fake.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
