/**
 * The agent's name-table subscription against a fake control plane (ADS over gRPC on a loopback port): tables
 * reach the DNS proxy, responses are ACKed, a table that does not decode is NACKed and the last good one stays,
 * and a cut stream is re-established with the last ACKed version.
 */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { TYPE_URL, toStruct } from '@trellis/api';
import { FakeAdsServer } from '@trellis/testing';
import { NameTableSubscription } from '../src/dns/name-table-client.js';
import type { NameTableInput } from '../src/dns/name-table.js';

describe('dns: name table subscription (NDS over ADS)', function () {
  this.timeout(10_000);
  let ads: FakeAdsServer;
  const controller = new AbortController();
  const tables: NameTableInput[] = [];
  let sub: NameTableSubscription;
  let running: Promise<void>;

  const waitTables = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && tables.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(tables.length).to.be.at.least(n);
  };

  before(async () => {
    ads = await new FakeAdsServer().start();
    ads.set(TYPE_URL.nameTable, [{ table: { 'reviews.default.svc.cluster.local': { ips: ['10.96.0.12'], shortname: 'reviews', namespace: 'default' } } }]);
    sub = new NameTableSubscription({
      address: ads.address,
      credentials: grpc.credentials.createInsecure(),
      node: { id: 'sidecar~10.0.0.9~vm-a.default~default.svc.cluster.local', metadata: toStruct({ NAMESPACE: 'default' }) },
      onTable: (t) => void tables.push(t),
      initialRetryMs: 20,
    });
    running = sub.start(controller.signal);
  });

  after(async () => {
    controller.abort();
    await running;
    await ads.stop();
  });

  it('subscribes with the node, hands the table over and ACKs it', async () => {
    await waitTables(1);
    expect(tables[0]!.table!['reviews.default.svc.cluster.local']!.ips).to.deep.equal(['10.96.0.12']);
    const first = await ads.waitFor((r) => r.typeUrl === TYPE_URL.nameTable && r.nonce === '');
    expect(first.nodeId).to.equal('sidecar~10.0.0.9~vm-a.default~default.svc.cluster.local');
    const ack = await ads.waitFor((r) => r.typeUrl === TYPE_URL.nameTable && r.nonce !== '');
    expect(ack).to.deep.include({ versionInfo: '1', errorDetail: null });
  });

  it('takes updates and NACKs a table that does not decode, keeping the last good one', async () => {
    ads.set(TYPE_URL.nameTable, [{ table: { 'ratings.default.svc.cluster.local': { ips: ['10.96.0.13'] } } }]);
    await waitTables(2);
    expect(Object.keys(tables[1]!.table!)).to.deep.equal(['ratings.default.svc.cluster.local']);
    ads.setRaw(TYPE_URL.nameTable, [{ type_url: TYPE_URL.nameTable, value: Uint8Array.from([0x0a, 0xff, 0xff, 0xff]) }], ['']);
    const nack = await ads.waitFor((r) => r.typeUrl === TYPE_URL.nameTable && r.errorDetail !== null);
    expect(nack.versionInfo, 'a NACK carries the last ACKed version').to.equal('2');
    expect(tables).to.have.length(2);
  });

  it('reconnects after the control plane cuts the stream, resubscribing with the last ACKed version', async () => {
    const before = ads.requests.length;
    ads.disconnectAll();
    const again = await ads.waitFor((r) => ads.requests.indexOf(r) >= before && r.typeUrl === TYPE_URL.nameTable && r.nonce === '');
    expect(again.versionInfo).to.equal('2');
    expect(again.nodeId).to.equal('sidecar~10.0.0.9~vm-a.default~default.svc.cluster.local');
  });
});
