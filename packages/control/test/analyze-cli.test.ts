import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'trellisctl.js');

/** Runs `node packages/control/bin/trellisctl.js ARGS` in `cwd` as a user would. */
function trellisctl(args: readonly string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), text);
  }
}

/** Bookinfo on VMs: services selected by labels, subsets, the gateway, the lab routes and the details-viewer policy. */
const BOOKINFO: Record<string, string> = {
  'authz.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-viewer, namespace: default}
spec:
  selector:
    matchLabels: {app: details}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]
    to:
    - operation:
        methods: ["GET"]
`,
  'destination-rules.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: productpage}
spec:
  host: productpage
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
  'routing/gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    - uri: {exact: /login}
    - uri: {exact: /logout}
    - uri: {prefix: /api/v1/products}
    route:
    - destination:
        host: productpage
        port: {number: 9080}
`,
  'routing/virtual-services.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v3}
      weight: 50
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay: {percentage: {value: 100.0}, fixedDelay: 7s}
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: ratings, subset: v1}
  - route:
    - destination: {host: ratings, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: details, subset: v1}
    timeout: 0.5s
`,
  'services.yaml': `# Bookinfo services, on VMs, selected by labels.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: productpage
  namespace: default
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http}
  workloadSelector:
    labels: {app: productpage}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: details
  namespace: default
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http}
  workloadSelector:
    labels: {app: details}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http}
  workloadSelector:
    labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ratings
  namespace: default
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http}
  workloadSelector:
    labels: {app: ratings}
`,
  'workloads.yaml': `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-vm, namespace: default}
spec: {address: 10.0.0.10, labels: {app: productpage, version: v1}, serviceAccount: bookinfo-productpage}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-vm, namespace: default}
spec: {address: 10.0.0.11, labels: {app: details, version: v1}, serviceAccount: bookinfo-details}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1-vm, namespace: default}
spec: {address: 10.0.0.12, labels: {app: reviews, version: v1}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2-vm, namespace: default}
spec: {address: 10.0.0.13, labels: {app: reviews, version: v2}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3-vm, namespace: default}
spec: {address: 10.0.0.14, labels: {app: reviews, version: v3}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-vm, namespace: default}
spec: {address: 10.0.0.15, labels: {app: ratings, version: v1}, serviceAccount: bookinfo-ratings}
`,
};

/** One mistake per check, each at a known line. */
const MISTAKES: Record<string, string> = {
  'services.yaml': BOOKINFO['services.yaml'],
  'destination-rules.yaml': BOOKINFO['destination-rules.yaml'],
  'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination:
        host: reviews
        subset: v4
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratinsg}
`,
  'more/dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nothing}
spec:
  host: nothing.example.com
`,
  'more/se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-legacy}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: tcp-legacy}
  workloadSelector: {labels: {app: reviews}}
`,
  'more/authz.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: details-viewer}
spec:
  rules:
  - from:
    - source:
        principals:
        - cluster.local/default/sa/bookinfo-productpage
`,
  'more/dup.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details
`,
  'invalid.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: details, subset: v1}
      weight: 150
`,
};

describe('trellisctl analyze (the CLI, spawned)', function () {
  this.timeout(30000);
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'trellis-analyze-'));
    await writeTree(join(root, 'bookinfo'), BOOKINFO);
    await writeTree(join(root, 'mistakes'), MISTAKES);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('exits 0 on the clean Bookinfo directory', async () => {
    const r = await trellisctl(['analyze', 'bookinfo'], root);
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.equal('No problems found in 6 files.\n');
    expect(r.code).to.equal(0);
  });

  it('exits 1 on a directory with mistakes and names each one with file and line', async () => {
    const r = await trellisctl(['analyze', 'mistakes'], root);
    expect(r.code).to.equal(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.map((l) => l.split(':')[0])).to.deep.equal([
      'error TRELLIS_A0100 mistakes/invalid.yaml',
      'error TRELLIS_A0007 mistakes/more/authz.yaml',
      'warning TRELLIS_A0003 mistakes/more/dr.yaml',
      'error TRELLIS_A0008 mistakes/more/dup.yaml',
      'error TRELLIS_A0004 mistakes/services.yaml',
      'error TRELLIS_A0005 mistakes/vs.yaml',
      'warning TRELLIS_A0006 mistakes/vs.yaml',
      'error TRELLIS_A0002 mistakes/vs.yaml',
      'error TRELLIS_A0001 mistakes/vs.yaml',
    ]);
    expect(lines).to.include('error TRELLIS_A0100 mistakes/invalid.yaml:9 spec.http[0].route[0].weight: must be between 0 and 100, got 150');
    expect(lines).to.include('error TRELLIS_A0002 mistakes/vs.yaml:11 spec.http[0].route[0].destination.subset: subset "v4" of host reviews.default.svc.cluster.local is not defined by any DestinationRule (the DestinationRules for this host define subsets "v1", "v2", "v3")');
    expect(lines).to.include('error TRELLIS_A0001 mistakes/vs.yaml:20 spec.http[0].route[0].destination.host: host ratinsg.default.svc.cluster.local is not defined by any ServiceEntry');
    expect(lines).to.include('error TRELLIS_A0005 mistakes/vs.yaml:6 spec.gateways[0]: gateway "bookinfo-gateway" is not defined (no Gateway bookinfo-gateway in namespace default)');
    expect(lines.find((l) => l.includes('A0007'))).to.match(/^error TRELLIS_A0007 mistakes\/more\/authz\.yaml:9 spec\.rules\[0\]\.from\[0\]\.source\.principals\[0\]: /);
    expect(lines.find((l) => l.includes('A0003'))).to.match(/^warning TRELLIS_A0003 mistakes\/more\/dr\.yaml:5 spec\.host: /);
    expect(lines.find((l) => l.includes('A0008'))).to.match(/^error TRELLIS_A0008 mistakes\/more\/dup\.yaml:3 metadata\.name: DestinationRule\/default\/details is also defined in mistakes\/destination-rules\.yaml:\d+/);
    expect(lines.find((l) => l.includes('A0004'))).to.match(/^error TRELLIS_A0004 mistakes\/services\.yaml:40 spec\.ports\[0\]\.protocol: port 9080 of host reviews\.default\.svc\.cluster\.local is HTTP here but TCP/);
    expect(lines.find((l) => l.includes('A0006'))).to.match(/^warning TRELLIS_A0006 mistakes\/vs\.yaml:6 spec\.gateways: /);
  });

  it('--output json prints an array of {code, level, file, line, path, message}', async () => {
    const r = await trellisctl(['analyze', '--output', 'json', 'mistakes/vs.yaml', 'mistakes/services.yaml', 'mistakes/destination-rules.yaml'], root);
    expect(r.code).to.equal(1);
    const findings = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(findings).to.have.length(4);
    for (const f of findings) expect(Object.keys(f)).to.deep.equal(['code', 'level', 'file', 'line', 'path', 'message']);
    expect(findings[0]).to.deep.include({ code: 'TRELLIS_A0005', level: 'error', file: 'mistakes/vs.yaml', line: 6, path: 'spec.gateways[0]' });
    const clean = await trellisctl(['analyze', '-o', 'json', 'bookinfo'], root);
    expect(clean.code).to.equal(0);
    expect(JSON.parse(clean.stdout)).to.deep.equal([]);
  });

  it('exits 2 on usage errors: no path, a missing path, an unknown output format', async () => {
    const none = await trellisctl(['analyze'], root);
    expect(none.code).to.equal(2);
    expect(none.stderr).to.contain("missing required argument 'path'");
    const missing = await trellisctl(['analyze', 'no-such-dir'], root);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.equal('trellisctl: no-such-dir: no such file or directory\n');
    const format = await trellisctl(['analyze', '-o', 'xml', 'bookinfo'], root);
    expect(format.code).to.equal(2);
    expect(format.stderr).to.contain('Allowed choices are human, json');
  });
});
