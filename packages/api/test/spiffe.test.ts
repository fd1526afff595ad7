import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  formatSpiffeId, parseSpiffeId, spiffeIdFromCertificate, splitSubjectAltName, tryParseSpiffeId, TrellisError,
} from '../src/index.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TrellisError ? err.code : 'not-trellis';
  }
  return undefined;
}

describe('spiffe ids', () => {
  it('parses the Istio form into trust domain, namespace and service account', () => {
    const id = parseSpiffeId('spiffe://cluster.local/ns/default/sa/web');
    expect(id).to.deep.equal({
      uri: 'spiffe://cluster.local/ns/default/sa/web', trustDomain: 'cluster.local', path: '/ns/default/sa/web',
      namespace: 'default', serviceAccount: 'web',
    });
    expect(Object.isFrozen(id)).to.equal(true);
  });

  it('parses other path forms without namespace/service account', () => {
    const id = parseSpiffeId('spiffe://root.linkerd.cluster.local/external-workload');
    expect(id.path).to.equal('/external-workload');
    expect(id.namespace).to.equal(undefined);
    expect(parseSpiffeId('spiffe://example.org').path).to.equal('');
  });

  const bad: Array<[string, RegExp]> = [
    ['http://cluster.local/ns/a/sa/b', /scheme/],
    ['SPIFFE://cluster.local/ns/a/sa/b', /scheme/],
    ['spiffe://Cluster.local/ns/a/sa/b', /lower-case/],
    ['spiffe://cluster.local/ns/a/sa/b?x=1', /query/],
    ['spiffe://cluster.local/ns/a/sa/b#frag', /fragment/],
    ['spiffe://user@cluster.local/ns/a/sa/b', /userinfo/],
    ['spiffe://cluster.local:8443/ns/a/sa/b', /port/],
    ['spiffe:///ns/a/sa/b', /trust domain is empty/],
    ['spiffe://cluster.local/ns//sa/b', /empty segment/],
    ['spiffe://cluster.local/ns/a/sa/b/', /trailing/],
    ['spiffe://cluster.local/ns/../sa/b', /"\.\."/],
    ['spiffe://cluster.local/ns/a%20b/sa/b', /segment/],
    [`spiffe://${'a'.repeat(256)}/x`, /255/],
    [`spiffe://example.org/${'a'.repeat(2048)}`, /2048/],
    ['', /empty/],
  ];
  for (const [uri, why] of bad) {
    it(`refuses ${JSON.stringify(uri.slice(0, 50))}`, () => {
      expect(() => parseSpiffeId(uri)).to.throw(TrellisError, why);
      expect(code(() => parseSpiffeId(uri))).to.equal('TRELLIS_ERR_SPIFFE_ID');
      expect(tryParseSpiffeId(uri)).to.equal(undefined);
    });
  }

  it('formats and round-trips, and refuses names that are not one segment', () => {
    const uri = formatSpiffeId({ trustDomain: 'td.example', namespace: 'ns-1', serviceAccount: 'sa.x' });
    expect(uri).to.equal('spiffe://td.example/ns/ns-1/sa/sa.x');
    expect(parseSpiffeId(uri).serviceAccount).to.equal('sa.x');
    expect(code(() => formatSpiffeId({ trustDomain: 'td', namespace: 'a/b', serviceAccount: 'c' }))).to.equal('TRELLIS_ERR_SPIFFE_ID');
    expect(code(() => formatSpiffeId({ trustDomain: 'td', namespace: 'a', serviceAccount: '' }))).to.equal('TRELLIS_ERR_SPIFFE_ID');
  });

  it('splits Node subjectAltName strings, including quoted values', () => {
    expect(splitSubjectAltName('DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:127.0.0.1')).to.deep.equal([
      ['DNS', 'a.example'], ['URI', 'spiffe://td/ns/a/sa/b'], ['IP Address', '127.0.0.1'],
    ]);
    expect(splitSubjectAltName('URI:"x, y", DNS:b')).to.deep.equal([['URI', 'x, y'], ['DNS', 'b']]);
    expect(splitSubjectAltName(undefined)).to.deep.equal([]);
  });

  describe('spiffeIdFromCertificate (certificates made by openssl)', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'trellis-spiffe-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    function makeCert(name: string, san: string): string {
      const key = join(dir, `${name}.key`);
      const cert = join(dir, `${name}.pem`);
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
        '-out', cert, '-days', '1', '-subj', '/O=test', '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
      return readFileSync(cert, 'utf8');
    }

    it('reads the URI SAN from PEM and from DER', () => {
      const pem = makeCert('one', 'DNS:x.example,URI:spiffe://cluster.local/ns/prod/sa/api');
      const id = spiffeIdFromCertificate(pem);
      expect(id.namespace).to.equal('prod');
      expect(id.serviceAccount).to.equal('api');
      const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
      expect(spiffeIdFromCertificate(der).uri).to.equal('spiffe://cluster.local/ns/prod/sa/api');
      // A PEM chain: the first certificate (the leaf) counts.
      expect(spiffeIdFromCertificate(pem + makeCert('issuer', 'DNS:ca.example')).serviceAccount).to.equal('api');
    });

    it('refuses certificates with no SPIFFE id, two of them, or an invalid one', () => {
      expect(code(() => spiffeIdFromCertificate(makeCert('none', 'DNS:x.example')))).to.equal('TRELLIS_ERR_SPIFFE_ID');
      expect(() => spiffeIdFromCertificate(makeCert('two', 'URI:spiffe://a/x,URI:spiffe://b/y'))).to.throw(/exactly one/);
      expect(() => spiffeIdFromCertificate(makeCert('bad', 'URI:spiffe://UPPER/x'))).to.throw(/lower-case/);
      expect(code(() => spiffeIdFromCertificate('not a cert'))).to.equal('TRELLIS_ERR_SPIFFE_ID');
    });
  });
});
