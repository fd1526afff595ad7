import { expect } from 'chai';
import { parseResourceText } from '@trellis/registry-adapters/file';
import { TrellisAdapter } from '@trellis/registry-adapters';
import { planRegistries } from '../src/registries/index.js';

const doc = (spec: string): ReturnType<typeof parseResourceText> =>
  parseResourceText(`apiVersion: trellis.dev/v1alpha1\nkind: Registry\nmetadata: {name: east, namespace: trellis-system}\nspec: ${spec}\n`, 'r.yaml', { source: { kind: 'file', shard: 't' } });

describe('registries: the trellis kind (another control plane\'s export)', () => {
  const files: Record<string, string> = { '/etc/trellis/east-root.pem': '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' };
  const env = { env: {}, baseDir: '/etc/trellis', readFile: (p: string): string => { if (p in files) return files[p]; throw Object.assign(new Error('nope'), { code: 'ENOENT' }); } };

  it('plans one shard trellis:<clusterId> with the CA bundle resolved against the config dir', () => {
    const parsed = doc('{type: trellis, address: "https://east.example:15017", clusterId: cluster-east, network: net-east, caBundle: east-root.pem}');
    expect(parsed.problems).to.deep.equal([]);
    const { plans, problems } = planRegistries(parsed.resources, env);
    expect(problems).to.deep.equal([]);
    expect(plans.map((p) => [p.shard, p.kind, p.declaredBy])).to.deep.equal([['trellis:cluster-east', 'trellis', 'Registry/trellis-system/east']]);
    const adapter = plans[0].create();
    expect(adapter).to.be.instanceOf(TrellisAdapter);
    expect(adapter.shard).to.equal('trellis:cluster-east');
  });

  it('reports an unreadable CA bundle as a problem, and the decoder refuses a trellis Registry without an address or with another type\'s field', () => {
    const missing = planRegistries(doc('{type: trellis, address: "https://east:15017", caBundle: nope.pem}').resources, env);
    expect(missing.plans).to.deep.equal([]);
    expect(missing.problems).to.deep.equal([{ declaredBy: 'Registry/trellis-system/east', message: 'caBundle: cannot read /etc/trellis/nope.pem (ENOENT)' }]);
    expect(doc('{type: trellis}').problems.map((p) => `${p.path}: ${p.message}`)).to.deep.equal(['spec.address: required field is missing (type trellis needs an address)']);
    expect(doc('{type: consul, address: "c:8500", caBundle: x.pem}').problems.map((p) => `${p.path}: ${p.message}`)).to.deep.equal(['spec.caBundle: applies only to type trellis, not consul']);
  });
});
