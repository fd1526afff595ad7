import { expect } from 'chai';
import { mkdtemp, mkdir, rename, rm, symlink, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RegistryChange } from '@trellis/model';
import { FileRegistry } from '@trellis/registry-adapters/file';

type Snapshot = Extract<RegistryChange, { type: 'snapshot' }>;

const SE_REVIEWS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
  endpoints:
  - address: 10.0.0.1
    labels: {version: v1}
`;

function vs(name: string, subset: string, weightLine = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: ${subset}
${weightLine}`;
}

const WE_VM = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-vm
  namespace: default
spec:
  address: 10.0.0.9
  labels: {app: details}
  serviceAccount: bookinfo-details
`;

/** Pulls snapshots from a registry's watch, each wait bounded by a timeout (no sleeps). */
class Changes {
  readonly #it: AsyncIterator<RegistryChange>;
  constructor(iterable: AsyncIterable<RegistryChange>) {
    this.#it = iterable[Symbol.asyncIterator]();
  }
  async next(timeoutMs = 5000): Promise<Snapshot> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no RegistryChange within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const r = await Promise.race([this.#it.next(), timeout]);
      if (r.done === true) throw new Error('watch ended');
      expect(r.value.type).to.equal('snapshot');
      return r.value as Snapshot;
    } finally {
      clearTimeout(timer);
    }
  }
  /** Next snapshots until one satisfies `pred` (a burst may settle in more than one rescan on a loaded machine). */
  async until(pred: (s: Snapshot) => boolean, timeoutMs = 5000): Promise<Snapshot> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.next(Math.max(1, deadline - Date.now()));
      if (pred(s)) return s;
    }
  }
}

const names = (s: Snapshot): string[] => s.configs.map((c) => `${c.kind}/${c.metadata.name}`);
const subsetOf = (s: Snapshot, name: string): string | undefined => {
  const c = s.configs.find((r) => r.kind === 'VirtualService' && r.metadata.name === name);
  const spec = c?.spec as { http: { route: { destination: { subset?: string } }[] }[] } | undefined;
  return spec?.http[0].route[0].destination.subset;
};

describe('file registry (real directory, chokidar)', function () {
  this.timeout(20000);
  let dir: string;
  let abort: AbortController;
  let changes: Changes;
  let registry: FileRegistry;

  async function start(options: Partial<ConstructorParameters<typeof FileRegistry>[0]> = {}): Promise<Snapshot> {
    registry = new FileRegistry({ dir, debounceMs: 30, ...options });
    abort = new AbortController();
    changes = new Changes(registry.watch(abort.signal));
    return changes.next();
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-file-registry-'));
  });
  afterEach(async () => {
    abort?.abort();
    // Drain so the watcher closes before the directory goes.
    await changes?.next(2000).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('yields a full snapshot after the initial scan: hub services, workloads and configs, shard file:<dir>', async () => {
    await writeFile(join(dir, 'reviews.yaml'), `${SE_REVIEWS}---\n${vs('reviews', 'v1')}`);
    await mkdir(join(dir, 'vms'));
    await writeFile(join(dir, 'vms', 'details.yml'), WE_VM);
    await writeFile(join(dir, 'notes.txt'), 'not a resource');
    const s = await start();
    expect(registry.shard).to.equal(`file:${dir}`);
    expect(registry.kind).to.equal('file');
    expect(s.status).to.include({ shard: `file:${dir}`, kind: 'file', state: 'synced' });
    expect(s.status.problems).to.deep.equal([]);
    expect(s.services.map((x) => x.hostname)).to.deep.equal(['reviews.default.svc.cluster.local']);
    expect(s.services[0].source).to.deep.equal({ kind: 'file', shard: `file:${dir}`, ref: `${join(dir, 'reviews.yaml')}#0` });
    expect(s.workloads.map((w) => w.name)).to.deep.equal(['reviews-0', 'details-vm']);
    expect(s.workloads[0]).to.include({ address: '10.0.0.1', weight: 1, health: 'HEALTHY' });
    expect(names(s)).to.deep.equal(['VirtualService/reviews']);
    expect(Object.isFrozen(s)).to.equal(true);
  });

  it('create, modify, atomic rename, rename, delete and a new subdirectory each give the right snapshot', async () => {
    await writeFile(join(dir, 'se.yaml'), SE_REVIEWS);
    const first = await start();
    expect(first.services).to.have.length(1);

    await writeFile(join(dir, 'vs.yaml'), vs('reviews', 'v1'));
    let s = await changes.until((x) => names(x).includes('VirtualService/reviews'));
    expect(subsetOf(s, 'reviews')).to.equal('v1');

    await writeFile(join(dir, 'vs.yaml'), vs('reviews', 'v2'));
    s = await changes.until((x) => subsetOf(x, 'reviews') === 'v2');

    // Atomic replace the way editors and kubectl-style tools do it: write a temporary file, rename over.
    await writeFile(join(dir, 'vs.yaml.tmp-4711'), vs('reviews', 'v3'));
    await rename(join(dir, 'vs.yaml.tmp-4711'), join(dir, 'vs.yaml'));
    s = await changes.until((x) => subsetOf(x, 'reviews') === 'v3');
    expect(s.configs).to.have.length(1);

    await rename(join(dir, 'vs.yaml'), join(dir, 'routes.yaml'));
    s = await changes.until((x) => x.configs[0]?.origin?.file === join(dir, 'routes.yaml'));
    expect(names(s)).to.deep.equal(['VirtualService/reviews']);

    await mkdir(join(dir, 'team-a'));
    await writeFile(join(dir, 'team-a', 'more.json'), JSON.stringify({
      apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'vm-2', namespace: 'default' }, spec: { address: '10.0.0.2' },
    }));
    s = await changes.until((x) => x.workloads.some((w) => w.name === 'vm-2'));

    await unlink(join(dir, 'routes.yaml'));
    s = await changes.until((x) => x.configs.length === 0);
    expect(s.services).to.have.length(1);
    expect(s.status.problems).to.deep.equal([]);

    await rm(join(dir, 'team-a'), { recursive: true });
    s = await changes.until((x) => !x.workloads.some((w) => w.name === 'vm-2'));
    expect(s.workloads.map((w) => w.name)).to.deep.equal(['reviews-0']);
  });

  it('keeps the last good version of a file that becomes invalid, reports file/document/line/path, and recovers', async () => {
    await writeFile(join(dir, 'vs.yaml'), `${SE_REVIEWS}---\n${vs('reviews', 'v1')}`);
    await start();

    // A decode violation in document 1: the route weight is out of range.
    await writeFile(join(dir, 'vs.yaml'), `${SE_REVIEWS}---\n${vs('reviews', 'v2', '      weight: 150\n')}`);
    let s = await changes.until((x) => x.status.problems.length > 0);
    expect(subsetOf(s, 'reviews')).to.equal('v1'); // last good kept, the whole file
    expect(s.services).to.have.length(1);
    const p = s.status.problems[0];
    expect(p.file).to.equal(join(dir, 'vs.yaml'));
    expect(p.document).to.equal(1);
    expect(p.path).to.equal('spec.http[0].route[0].weight');
    expect(p.line).to.equal(SE_REVIEWS.split('\n').length + 13); // the `weight:` line
    expect(p.message).to.match(/100/);

    // YAML syntax error.
    await writeFile(join(dir, 'vs.yaml'), `${SE_REVIEWS}---\nkind: VirtualService\nspec: [unclosed\n`);
    s = await changes.until((x) => x.status.problems.some((q) => q.message.startsWith('YAML')));
    expect(subsetOf(s, 'reviews')).to.equal('v1');
    expect(s.status.problems[0]).to.include({ file: join(dir, 'vs.yaml'), document: 1 });
    expect(s.status.problems[0].line).to.be.a('number');

    // Fixed: the new content is in force and the problems are gone.
    await writeFile(join(dir, 'vs.yaml'), `${SE_REVIEWS}---\n${vs('reviews', 'v3')}`);
    s = await changes.until((x) => x.status.problems.length === 0);
    expect(subsetOf(s, 'reviews')).to.equal('v3');
  });

  it('a file that was never valid contributes nothing but is reported', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hostz: [a]\n');
    const s = await start();
    expect(s.configs).to.deep.equal([]);
    expect(s.status.problems.map((p) => [p.path, p.line])).to.deep.include(['spec.hostz', 5]);
  });

  it('follows a Kubernetes ConfigMap mount across the ..data symlink swap, counting nothing twice', async () => {
    const v1 = join(dir, '..2026_11_22_04_00_00.000000001');
    await mkdir(v1);
    await writeFile(join(v1, 'reviews.yaml'), `${SE_REVIEWS}---\n${vs('reviews', 'v1')}`);
    await symlink('..2026_11_22_04_00_00.000000001', join(dir, '..data'));
    await symlink('..data/reviews.yaml', join(dir, 'reviews.yaml'));
    let s = await start();
    expect(s.services).to.have.length(1);
    expect(names(s)).to.deep.equal(['VirtualService/reviews']);
    expect(subsetOf(s, 'reviews')).to.equal('v1');

    // The kubelet's update: a new timestamped directory, a new `..data_tmp` link renamed over `..data`, old dir removed.
    const v2 = join(dir, '..2026_11_22_04_05_00.000000002');
    await mkdir(v2);
    await writeFile(join(v2, 'reviews.yaml'), `${SE_REVIEWS}---\n${vs('reviews', 'v2')}`);
    await symlink('..2026_11_22_04_05_00.000000002', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(v1, { recursive: true });
    s = await changes.until((x) => subsetOf(x, 'reviews') === 'v2');
    expect(s.services).to.have.length(1);
    expect(s.configs).to.have.length(1);
    expect(s.status.problems).to.deep.equal([]);
  });

  it('the same resource in two files: the definition in force stays, both files are reported', async () => {
    await writeFile(join(dir, 'b.yaml'), vs('reviews', 'from-b'));
    let s = await start();
    expect(subsetOf(s, 'reviews')).to.equal('from-b');

    // a.yaml sorts first but b.yaml's definition was there first: it stays.
    await writeFile(join(dir, 'a.yaml'), vs('reviews', 'from-a'));
    s = await changes.until((x) => x.status.problems.length > 0);
    expect(subsetOf(s, 'reviews')).to.equal('from-b');
    expect(s.configs).to.have.length(1);
    const files = s.status.problems.map((p) => p.file);
    expect(files).to.have.members([join(dir, 'a.yaml'), join(dir, 'b.yaml')]);
    const onA = s.status.problems.find((p) => p.file === join(dir, 'a.yaml'))!;
    expect(onA).to.include({ path: 'metadata.name', line: 4 });
    expect(onA.message).to.contain('VirtualService/default/reviews').and.contain('b.yaml');

    // The owner goes: the other definition takes over and the problems clear.
    await unlink(join(dir, 'b.yaml'));
    s = await changes.until((x) => x.status.problems.length === 0);
    expect(subsetOf(s, 'reviews')).to.equal('from-a');
  });

  it('at start-up, the first file in path order wins a duplicate', async () => {
    await writeFile(join(dir, 'a.yaml'), vs('reviews', 'from-a'));
    await writeFile(join(dir, 'b.yaml'), vs('reviews', 'from-b'));
    const s = await start();
    expect(subsetOf(s, 'reviews')).to.equal('from-a');
    expect(s.status.problems).to.have.length(2);
  });

  it('enforces limits with clear errors: file size, document count, alias bombs', async () => {
    await writeFile(join(dir, 'big.yaml'), `${vs('big', 'v1')}# ${'x'.repeat(3000)}\n`);
    await writeFile(join(dir, 'many.yaml'), Array.from({ length: 5 }, (_, i) => vs(`r${i}`, 'v1')).join('---\n'));
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]', 'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]'].join('\n');
    await writeFile(join(dir, 'bomb.yaml'), `${bomb}\n`);
    const s = await start({ limits: { maxFileBytes: 2048, maxDocuments: 3 } });
    expect(s.configs).to.deep.equal([]);
    const byFile = new Map(s.status.problems.map((p) => [p.file, p.message]));
    expect(byFile.get(join(dir, 'big.yaml'))).to.match(/bytes; the limit is 2048 bytes/);
    expect(byFile.get(join(dir, 'many.yaml'))).to.equal('file has 5 documents; the limit is 3');
    expect(byFile.get(join(dir, 'bomb.yaml'))).to.match(/alias/i);
  });

  it('puts MeshConfig and Registry resources in configs', async () => {
    await writeFile(join(dir, 'mesh.yaml'), 'apiVersion: trellis.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: trellis-system}\nspec:\n  trustDomain: example.org\n');
    const s = await start();
    expect(names(s)).to.deep.equal(['MeshConfig/mesh']);
  });

  it('a missing directory is unavailable, not empty: stale status, last state kept, picked up when it appears', async () => {
    const sub = join(dir, 'config');
    let s = await start({ dir: sub, missingPollMs: 20 });
    expect(s.status).to.include({ state: 'stale', lastError: `directory ${sub} does not exist` });
    expect(s.configs).to.deep.equal([]);

    await mkdir(sub);
    await writeFile(join(sub, 'vs.yaml'), vs('reviews', 'v1'));
    s = await changes.until((x) => x.configs.length === 1);
    expect(s.status.state).to.equal('synced');
    expect(s.status.lastError).to.equal(undefined);

    await rm(sub, { recursive: true });
    s = await changes.until((x) => x.status.state === 'stale');
    expect(subsetOf(s, 'reviews')).to.equal('v1'); // the last state stays
    expect(s.status.staleSince).to.be.a('string');

    await mkdir(sub);
    await writeFile(join(sub, 'vs.yaml'), vs('reviews', 'v2'));
    s = await changes.until((x) => x.status.state === 'synced' && subsetOf(x, 'reviews') === 'v2');
  });

  it('ends the stream and closes the watcher when the signal aborts', async () => {
    await start();
    abort.abort();
    const it = registry.watch(abort.signal)[Symbol.asyncIterator]();
    expect((await it.next()).done).to.equal(true);
  });
});
