import { expect } from 'chai';
import { parseResourceText, splitPath } from '@trellis/registry-adapters/file';

const TWO_DOCS = `# leading comment
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  labels:
    app.kubernetes.io/name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
---
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
`;

describe('file parsing (shared by the file registry and trellisctl analyze)', () => {
  it('splits field paths, including quoted keys', () => {
    expect(splitPath('spec.http[0].route[12].destination')).to.deep.equal(['spec', 'http', 0, 'route', 12, 'destination']);
    expect(splitPath('metadata.labels["app.kubernetes.io/name"]')).to.deep.equal(['metadata', 'labels', 'app.kubernetes.io/name']);
    expect(splitPath('')).to.deep.equal([]);
  });

  it('decodes every document, skips empty ones, keeps document indexes and lines', () => {
    const f = parseResourceText(TWO_DOCS, 'dir/a.yaml', { source: { kind: 'file', shard: 'file:/dir' } });
    expect(f.problems).to.deep.equal([]);
    expect(f.documents.map((d) => [d.index, d.line, d.resource?.kind])).to.deep.equal([[0, 2, 'DestinationRule'], [2, 15, 'VirtualService']]);
    expect(f.resources.map((r) => r.metadata.namespace)).to.deep.equal(['default', 'bookinfo']);
    expect(f.resources[1].origin).to.deep.equal({ kind: 'file', shard: 'file:/dir', ref: 'dir/a.yaml#2', file: 'dir/a.yaml', document: 2, line: 15 });
    expect(Object.isFrozen(f.resources[0])).to.equal(true);
  });

  it('skips other systems\' resources in a mixed manifest and still reports typos of Trellis groups and kinds', () => {
    const mixed = [
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews}\nspec: {replicas: 1}',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}',
      'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec: {}',
      'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}',
      'apiVersion: networking.istio.oi/v1\nkind: Gateway\nmetadata: {name: typo-group}\nspec: {}',
      'apiVersion: apps/v1\nkind: virtualservice\nmetadata: {name: typo-kind-case}\nspec: {}',
    ].join('\n---\n');
    const f = parseResourceText(mixed, 'k8s.yaml');
    expect(f.skipped.map((x) => [x.document, x.apiVersion, x.kind])).to.deep.equal([[0, 'apps/v1', 'Deployment'], [1, 'v1', 'ConfigMap'], [2, 'networking.k8s.io/v1', 'NetworkPolicy']]);
    expect(f.resources.map((r) => `${r.kind}/${r.metadata.name}`)).to.deep.equal(['VirtualService/reviews']);
    expect(f.problems.map((p) => [p.document, p.path])).to.deep.include.members([[4, 'apiVersion'], [5, 'kind']]);
  });

  const lines: readonly [string, number, number][] = [
    ['spec.subsets[0].labels.version', 0, 12],
    ['metadata.labels["app.kubernetes.io/name"]', 0, 7],
    ['spec.subsets[0].name', 0, 11],
    ['spec.subsets[3].name', 0, 10], // missing item: its nearest existing parent
    ['spec.trafficPolicy', 0, 8],
    ['', 0, 2],
    ['spec.http[0].route[0].destination.subset', 1, 24],
  ];
  for (const [path, doc, line] of lines) {
    it(`locates ${path || '(document)'} in document ${doc} at line ${line}`, () => {
      const f = parseResourceText(TWO_DOCS, 'a.yaml');
      expect(f.documents[doc].lineOf(path)).to.equal(line);
    });
  }

  it('reports decode violations with file, document, line and path; the file is then invalid', () => {
    const f = parseResourceText(TWO_DOCS.replace('subset: v1\n', 'subset: v1\n      weight: -1\n'), 'a.yaml');
    expect(f.problems).to.deep.equal([
      { file: 'a.yaml', document: 2, line: 25, path: 'spec.http[0].route[0].weight', message: f.problems[0].message },
    ]);
    expect(f.resources).to.have.length(1);
  });

  it('reports a YAML syntax error at its line', () => {
    const f = parseResourceText('apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: [x\n  other: 1\n', 'g.yaml');
    expect(f.problems).to.have.length.greaterThan(0);
    expect(f.problems[0]).to.include({ file: 'g.yaml', document: 0, path: '' });
    expect(f.problems[0].message).to.match(/^YAML: /);
    expect(f.problems[0].line).to.be.within(4, 6);
  });

  it('reports duplicate keys and two documents defining one resource', () => {
    expect(parseResourceText('a: 1\na: 2\n', 'k.yaml').problems[0].message).to.match(/unique/);
    const dr = TWO_DOCS.split('---\n')[0];
    const f = parseResourceText(`${dr}---\n${dr}`, 'd.yaml');
    expect(f.problems).to.deep.equal([
      { file: 'd.yaml', document: 1, line: 18, path: 'metadata.name', message: 'DestinationRule/default/reviews is already defined by document 0 of this file' },
    ]);
  });

  it('enforces the size, document and alias limits', () => {
    expect(parseResourceText('x'.repeat(100), 'big.yaml', { limits: { maxFileBytes: 10 } }).problems[0].message)
      .to.equal('file is 100 bytes; the limit is 10 bytes');
    expect(parseResourceText('a: 1\n---\nb: 2\n---\nc: 3\n', 'many.yaml', { limits: { maxDocuments: 2 } }).problems[0].message)
      .to.equal('file has 3 documents; the limit is 2');
    const bomb = 'a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n';
    expect(parseResourceText(bomb, 'bomb.yaml', { limits: { maxAliasCount: 10 } }).problems[0].message).to.match(/^YAML: too many aliases \(limit 10\)/);
  });

  it('reads JSON files', () => {
    const f = parseResourceText(JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'x' }, spec: { host: 'x' } }), 'x.json');
    expect(f.problems).to.deep.equal([]);
    expect(f.resources[0].kind).to.equal('DestinationRule');
  });
});
