import { expect } from 'chai';
import { resourceKey, serviceKey, workloadKey } from '@trellis/model';

describe('model keys', () => {
  it('identifies a service by namespace and hostname', () => {
    expect(serviceKey({ namespace: 'default', hostname: 'reviews.default.svc.cluster.local' })).to.equal('default/reviews.default.svc.cluster.local');
  });
  it('identifies a workload by namespace and name', () => {
    expect(workloadKey({ namespace: 'bookinfo', name: 'vm-1' })).to.equal('bookinfo/vm-1');
  });
  it('identifies a resource by kind, namespace and name', () => {
    expect(resourceKey({ kind: 'VirtualService', metadata: { namespace: 'default', name: 'reviews' } })).to.equal('VirtualService/default/reviews');
  });
});
