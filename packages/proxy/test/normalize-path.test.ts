import { expect } from 'chai';
import fc from 'fast-check';
import { normalizeRequestPath, removeDotSegments, splitAbsoluteForm } from '../src/http/layers/normalize-path.js';

const BOTH = { normalizePath: true, mergeSlashes: true };
const norm = (p: string, o = BOTH) => {
  const r = normalizeRequestPath(p, o);
  return r.ok ? r.path : `400 ${r.reason}`;
};

describe('path normalization (Envoy normalize_path + merge_slashes)', () => {
  const cases: [string, string][] = [
    ['/admin', '/admin'],
    ['//admin', '/admin'],
    ['/%61dmin', '/admin'],
    ['/%61%64%6D%69%6e', '/admin'],
    ['/./admin', '/admin'],
    ['/public/../admin', '/admin'],
    ['/a/b/../../admin', '/admin'],
    ['/../../admin', '/admin'],
    ['\\admin', '/admin'],
    ['/public\\..\\admin', '/admin'],
    ['/%2e/admin', '/admin'],
    ['/%2E%2E/admin', '/admin'],
    ['/.%2e/admin', '/admin'],
    ['/admin/.', '/admin/'],
    ['/admin/x/..', '/admin/'],
    ['/admin?x=/../y', '/admin?x=/../y'],
    ['/admin#frag', '/admin'],
    ['/a//../admin', '/a/admin'],
    ['/%2Fadmin', '/%2Fadmin'],
    ['/%2fadmin', '/%2Fadmin'],
    ['/%5cadmin', '/%5Cadmin'],
    ['/a%20b', '/a%20b'],
    ['/a b', '/a%20b'],
    ['/caf\u00e9', '/caf%E9'],
    ['/admin;jsessionid=1', '/admin;jsessionid=1'],
    ['/%7euser', '/~user'],
    ['/ADMIN', '/ADMIN'],
  ];
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} → ${want}`, () => expect(norm(input)).to.equal(want));
  }

  it('merge_slashes alone does not touch dots or escapes; normalize_path alone keeps //', () => {
    expect(norm('//a/./%61', { normalizePath: false, mergeSlashes: true })).to.equal('/a/./%61');
    expect(norm('//a/./%61', { normalizePath: true, mergeSlashes: false })).to.equal('//a/a');
  });

  it('refuses invalid percent-encodings and relative paths', () => {
    expect(norm('/%zzadmin')).to.match(/^400 invalid percent-encoding/);
    expect(norm('/admin%4')).to.match(/^400 invalid percent-encoding/);
    expect(norm('/admin%')).to.match(/^400/);
    expect(norm('admin')).to.equal('400 path does not start with /');
    expect(norm('')).to.match(/^400/);
  });

  it('splits absolute-form targets', () => {
    expect(splitAbsoluteForm('http://details:9080/admin?x')).to.deep.equal({ authority: 'details:9080', path: '/admin?x' });
    expect(splitAbsoluteForm('http://details')).to.deep.equal({ authority: 'details', path: '/' });
    expect(splitAbsoluteForm('/admin')).to.equal(null);
  });

  it('remove_dot_segments (RFC 3986 §5.2.4 examples)', () => {
    expect(removeDotSegments('/a/b/c/./../../g')).to.equal('/a/g');
    expect(removeDotSegments('/mid/content=5/../6')).to.equal('/mid/6');
  });

  it('is idempotent and leaves no dot segments, backslashes, double slashes or decodable escapes (property)', () => {
    const alphabet = fc.constantFrom('/', '.', '..', '%2e', '%2E', '%2f', '%5C', '\\', 'a', 'A', '%61', '%41', '~', '%7E', ';', '-', '_', '//');
    fc.assert(fc.property(fc.array(alphabet, { maxLength: 12 }), (parts) => {
      const p = `/${parts.join('')}`;
      const r = normalizeRequestPath(p, BOTH);
      expect(r.ok).to.equal(true);
      if (!r.ok) return;
      const again = normalizeRequestPath(r.path, BOTH);
      expect(again).to.deep.equal(r);
      expect(r.path.startsWith('/')).to.equal(true);
      expect(r.path).to.not.match(/\/\.\.?(\/|$)|\\|\/\/|%(2[DEde]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee]|2e|2E)/);
    }), { numRuns: 500 });
  });
});
