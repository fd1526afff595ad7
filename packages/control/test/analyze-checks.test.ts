import { expect } from 'chai';
import { parseResourceText } from '@trellis/registry-adapters/file';
import { analyze } from '../src/analyze/analyze.js';
import { formatFinding, type Finding } from '../src/analyze/findings.js';
import { principalProblem } from '../src/analyze/principals.js';
import { candidates, fqdn, hostMatches } from '../src/analyze/hosts.js';

/** The world most rows start from: reviews (SE, DR with v1/v2), a wildcard external SE, a Gateway. */
const WORLD = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 443, name: https}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
`;

function run(files: Record<string, string>): Finding[] {
  return analyze(Object.entries(files).map(([file, text]) => parseResourceText(text, file)));
}

/** `code file:line path` of each finding, the part a table can pin down exactly. */
const brief = (fs: readonly Finding[]): string[] => fs.map((f) => `${f.code} ${f.file}:${f.line} ${f.path}`);

function vs(spec: string, name = 'r', namespace = 'default'): string {
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: ${namespace}}\nspec:\n${spec}`;
}

interface Row {
  readonly title: string;
  readonly files: Record<string, string>;
  readonly expected: readonly string[];
  readonly message?: RegExp;
}

const rows: readonly Row[] = [
  { title: 'a clean world has no findings', files: { 'w.yaml': WORLD }, expected: [] },
  {
    title: 'A0001 destination host no ServiceEntry defines',
    files: { 'w.yaml': WORLD, 'vs.yaml': vs('  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reveiws}\n') },
    expected: ['TRELLIS_A0001 vs.yaml:8 spec.http[0].route[0].destination.host'],
    message: /host reveiws\.default\.svc\.cluster\.local is not defined by any ServiceEntry/,
  },
  {
    title: 'A0001 not raised for short, name.ns, FQDN and wildcard-covered hosts',
    files: {
      'w.yaml': WORLD,
      'vs.yaml': vs('  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: 50\n    - destination: {host: reviews.default}\n      weight: 50\n  - route:\n    - destination: {host: api.example.com}\n'),
    },
    expected: [],
  },
  {
    title: 'A0001 short name resolves in the VirtualService namespace',
    files: { 'w.yaml': WORLD, 'vs.yaml': vs('  hosts: [reviews]\n  tcp:\n  - route:\n    - destination: {host: reviews}\n', 'r', 'other') },
    expected: ['TRELLIS_A0001 vs.yaml:8 spec.tcp[0].route[0].destination.host'],
    message: /reviews\.other\.svc\.cluster\.local/,
  },
  {
    title: 'A0002 subset no DestinationRule defines (route and mirror)',
    files: {
      'w.yaml': WORLD,
      'vs.yaml': vs('  hosts: [reviews]\n  http:\n  - route:\n    - destination:\n        host: reviews\n        subset: v4\n    mirror: {host: reviews, subset: v2}\n'),
    },
    expected: ['TRELLIS_A0002 vs.yaml:10 spec.http[0].route[0].destination.subset'],
    message: /subset "v4" of host reviews\.default\.svc\.cluster\.local is not defined by any DestinationRule/,
  },
  {
    title: 'A0002 when no DestinationRule exists for the host',
    files: { 'w.yaml': WORLD, 'vs.yaml': vs('  hosts: [x.example.com]\n  http:\n  - route:\n    - destination: {host: x.example.com, subset: v1}\n') },
    expected: ['TRELLIS_A0002 vs.yaml:8 spec.http[0].route[0].destination.subset'],
    message: /no DestinationRule exists for this host/,
  },
  {
    title: 'A0003 DestinationRule for an unknown host (warning); wildcard-covered hosts are known',
    files: {
      'w.yaml': WORLD,
      'dr.yaml': 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ghost}\nspec:\n  host: ghost\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api}\nspec:\n  host: api.example.com\n',
    },
    expected: ['TRELLIS_A0003 dr.yaml:5 spec.host'],
    message: /ghost\.default\.svc\.cluster\.local is not defined by any ServiceEntry/,
  },
  {
    title: 'A0004 same host, same port number, different protocol',
    files: {
      'w.yaml': WORLD,
      'z.yaml': 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-tcp}\nspec:\n  hosts: [reviews]\n  ports:\n  - {number: 9080, name: tcp}\n  resolution: NONE\n',
    },
    expected: ['TRELLIS_A0004 z.yaml:7 spec.ports[0].protocol'],
    message: /port 9080 of host reviews\.default\.svc\.cluster\.local is TCP here but HTTP in ServiceEntry default\/reviews \(w\.yaml:3\)/,
  },
  {
    title: 'A0004 same host, same port name, different number',
    files: {
      'w.yaml': WORLD,
      'z.yaml': 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-2}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports:\n  - {number: 9081, name: http}\n  resolution: NONE\n',
    },
    expected: ['TRELLIS_A0004 z.yaml:7 spec.ports[0].number'],
  },
  {
    title: 'A0004 not raised when two ServiceEntries agree',
    files: {
      'w.yaml': WORLD,
      'z.yaml': 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews-2}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports:\n  - {number: 9080, name: http}\n  resolution: NONE\n',
    },
    expected: [],
  },
  {
    title: 'A0005 gateway referenced but not defined (spec.gateways and match gateways); ns/name resolves',
    files: {
      'w.yaml': WORLD,
      'vs.yaml': vs('  hosts: ["*"]\n  gateways: [istio-system/gw, gw, mesh]\n  http:\n  - match:\n    - gateways: [other/missing]\n    route:\n    - destination: {host: reviews}\n'),
    },
    expected: ['TRELLIS_A0005 vs.yaml:6 spec.gateways[1]', 'TRELLIS_A0005 vs.yaml:9 spec.http[0].match[0].gateways[0]'],
  },
  {
    title: 'A0006 (DS-17) gateways without mesh on a mesh host: warning',
    files: { 'w.yaml': WORLD, 'vs.yaml': vs('  hosts: [reviews]\n  gateways: [istio-system/gw]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n') },
    expected: ['TRELLIS_A0006 vs.yaml:6 spec.gateways'],
    message: /without "mesh": sidecars calling reviews\.default\.svc\.cluster\.local no longer get these routes/,
  },
  {
    title: 'A0006 not raised with mesh included, or for hosts mesh clients do not use',
    files: {
      'w.yaml': WORLD,
      'vs.yaml': vs('  hosts: [reviews]\n  gateways: [istio-system/gw, mesh]\n  http:\n  - route:\n    - destination: {host: reviews}\n'),
      'vs2.yaml': vs('  hosts: ["bookinfo.example.org"]\n  gateways: [istio-system/gw]\n  http:\n  - route:\n    - destination: {host: reviews}\n', 'r2'),
    },
    expected: [],
  },
  {
    title: 'A0007 malformed principals and notPrincipals',
    files: {
      'ap.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p}
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/ok", "ns/default/sa/x", "*"]
    - source:
        notPrincipals: ["spiffe://cluster.local/ns/a/sa/b"]
`,
    },
    expected: ['TRELLIS_A0007 ap.yaml:8 spec.rules[0].from[0].source.principals[1]', 'TRELLIS_A0007 ap.yaml:10 spec.rules[0].from[1].source.notPrincipals[0]'],
  },
  {
    title: 'A0008 the same resource in two files: reported on the later file',
    files: { 'w.yaml': WORLD, 'x.yaml': WORLD.split('---\n')[2] },
    expected: ['TRELLIS_A0008 x.yaml:3 metadata.name'],
    message: /DestinationRule\/default\/reviews is also defined in w\.yaml:21/,
  },
  {
    title: 'A0100 decode violations with their own path and line, YAML errors',
    files: {
      'bad.yaml': vs('  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subet: v1}\n'),
      'syntax.yaml': 'kind: [x\n',
    },
    expected: ['TRELLIS_A0100 bad.yaml:8 spec.http[0].route[0].destination.subet', 'TRELLIS_A0100 syntax.yaml:2 '],
    message: /did you mean `subset`/,
  },
];

describe('analyze: cross-resource checks', () => {
  for (const row of rows) {
    it(row.title, () => {
      const findings = run(row.files);
      expect(brief(findings)).to.deep.equal(row.expected);
      if (row.message !== undefined) expect(findings[0].message).to.match(row.message);
    });
  }

  it('levels: A0003 and A0006 are warnings, the rest errors', () => {
    const findings = run({
      'w.yaml': WORLD,
      'a.yaml': 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ghost}\nspec:\n  host: ghost\n',
      'b.yaml': vs('  hosts: [reviews]\n  gateways: [nope]\n  http:\n  - route:\n    - destination: {host: reviews}\n'),
    });
    expect(findings.map((f) => `${f.code}:${f.level}`)).to.deep.equal(['TRELLIS_A0003:warning', 'TRELLIS_A0005:error', 'TRELLIS_A0006:warning']);
  });

  it('formats one line per finding: level code file:line path: message', () => {
    expect(formatFinding({ code: 'TRELLIS_A0002', level: 'error', file: 'dir/vs.yaml', line: 12, path: 'spec.x', message: 'm' }))
      .to.equal('error TRELLIS_A0002 dir/vs.yaml:12 spec.x: m');
    expect(formatFinding({ code: 'TRELLIS_A0100', level: 'error', file: 'f.yaml', line: 0, path: '', message: 'm' })).to.equal('error TRELLIS_A0100 f.yaml: m');
  });
});

describe('analyze: principals', () => {
  const valid = ['*', 'cluster.local/ns/default/sa/bookinfo-productpage', 'cluster.local/ns/default/sa/*', 'cluster.local/ns/*', 'cluster.local/*',
    '*/ns/foo/sa/bar', '*/sa/bar', '*bar', 'td/ns/a/s*'];
  const invalid = ['cluster.local/default/sa/x', 'ns/default/sa/x', 'spiffe://cluster.local/ns/a/sa/b', 'cluster.local/ns/*/sa/x', '**',
    'cluster.local/ns/a/sa/b/c', 'cluster.local/ns//sa/b', 'td/nx/a*', '*/ns/a/sb/b', ''];
  for (const p of valid) it(`accepts ${JSON.stringify(p)}`, () => expect(principalProblem(p)).to.equal(undefined));
  for (const p of invalid) it(`rejects ${JSON.stringify(p)}`, () => expect(principalProblem(p)).to.be.a('string'));
});

describe('analyze: hosts', () => {
  it('expands short names in the namespace and leaves dotted names', () => {
    expect(fqdn('reviews', 'bookinfo')).to.equal('reviews.bookinfo.svc.cluster.local');
    expect(fqdn('api.example.com', 'x')).to.equal('api.example.com');
    expect(candidates('reviews.bookinfo', 'x')).to.deep.equal(['reviews.bookinfo', 'reviews.bookinfo.svc.cluster.local']);
  });
  it('matches wildcards', () => {
    expect(hostMatches('*.example.com', 'a.example.com')).to.equal(true);
    expect(hostMatches('*.example.com', 'example.com')).to.equal(false);
    expect(hostMatches('*', 'anything')).to.equal(true);
    expect(hostMatches('*.example.com', '*.a.example.com')).to.equal(true);
  });
});
