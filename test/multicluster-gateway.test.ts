/**
 * The east-west gateway's data path in trellis-proxy: the listener and cluster the control plane generates for an
 * AUTO_PASSTHROUGH server (taken verbatim from the golden file packages/control/test/golden/multicluster-networks,
 * so this test follows the generator), served to a proxy by a fake ADS. A client's mesh mTLS with SNI
 * `outbound_.<port>_.<subset>_.<host>` must reach the endpoint untouched: the certificate the client sees is the
 * endpoint's (the gateway terminates nothing and has no secrets), the endpoint sees the client's certificate, and
 * an unknown SNI or plaintext is refused.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { TYPE_URL } from '@trellis/api';
import { issueTestCert, makeTestCa, type TestCa } from '@trellis/testing';
import { ROOT } from './processes.js';
import { downstreamTls, hcm, startProxy, type RunningProxy } from './proxy-fixtures.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- generated JSON

const GOLDEN = join(ROOT, 'packages/control/test/golden/multicluster-networks/expected.json');
const ROUTER = 'router~10.67.2.20~eastwest.istio-system~istio-system.svc.cluster.local';
const SNI = 'outbound_.8000_._.httpbin.default.svc.cluster.local';
const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/httpbin';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';

function peerUri(cert: tls.PeerCertificate | undefined): string {
  return /URI:([^,\s]+)/.exec(cert?.subjectaltname ?? '')?.[1] ?? '';
}

describe('east-west gateway data path: SNI passthrough (AUTO_PASSTHROUGH) in trellis-proxy', function () {
  this.timeout(20_000);
  let ca: TestCa;
  let backend: tls.Server;
  let gw: RunningProxy;
  const seen: string[] = [];

  before(async () => {
    ca = makeTestCa();
    const serverCert = issueTestCert(ca, SERVER_ID);
    backend = tls.createServer({ key: serverCert.keyPem, cert: serverCert.chainPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['istio'] }, (s) => {
      seen.push(peerUri(s.getPeerCertificate()));
      s.on('data', (d: Buffer) => s.write(`echo:${d.toString()}`));
      s.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as net.AddressInfo).port;

    const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Record<string, Record<string, Obj[]>>;
    const generated = golden[ROUTER]!;
    const listener = generated.LDS!.find((l) => l.name === '0.0.0.0_15443')!;
    const cluster = generated.CDS!.find((c) => c.name === SNI)!;
    expect(listener.filter_chains.every((c: Obj) => c.transport_socket === undefined), 'no chain terminates TLS').to.equal(true);
    gw = await startProxy({
      ca, sa: 'eastwest', workload: 'eastwest', namespace: 'istio-system',
      resources: {
        listener: [
          { ...listener, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
          // A terminating listener, as a positive control for the /config_dump check below.
          { name: 'terminating', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ transport_socket: downstreamTls(), filters: [hcm({ routeConfig: { name: 'r', virtual_hosts: [] } })] }] },
        ],
        cluster: [cluster],
        endpoint: [{ cluster_name: SNI, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: backendPort } } }, health_status: 'HEALTHY' }] }] }],
      },
    });
    // The gateway's SDS holds a certificate of its own (the fixture gives every proxy one): it must not be used.
    gw.sds.setCertificate('default', issueTestCert(ca, 'spiffe://cluster.local/ns/istio-system/sa/eastwest'));
  });

  after(async () => {
    await gw?.stop();
    await new Promise<void>((r) => (backend ? backend.close(() => r()) : r()));
  });

  const connect = (servername: string): Promise<{ peer: string; reply: string }> => new Promise((resolve, reject) => {
    const client = issueTestCert(ca, CLIENT_ID);
    const s = tls.connect({ host: '127.0.0.1', port: gw.port('0.0.0.0_15443'), servername, key: client.keyPem, cert: client.chainPem, ca: ca.certPem, ALPNProtocols: ['istio'], checkServerIdentity: () => undefined }, () => {
      const peer = peerUri(s.getPeerCertificate());
      s.once('data', (d: Buffer) => { resolve({ peer, reply: d.toString() }); s.end(); });
      s.write('hello');
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed before a reply')));
  });

  it('routes mTLS by SNI to the local endpoint without terminating it: end-to-end identities on both sides', async () => {
    const r = await connect(SNI);
    expect(r.peer, 'the certificate the client sees').to.equal(SERVER_ID);
    expect(r.reply).to.equal('echo:hello');
    expect(seen[seen.length - 1], 'the client identity the endpoint sees').to.equal(CLIENT_ID);
  });

  it('/config_dump shows no TLS context on the passthrough listener or its cluster (the check multicluster-e2e uses)', async () => {
    const dump = await (await fetch(`http://127.0.0.1:${gw.proxy.adminPort}/config_dump`)).text();
    const entries = (JSON.parse(dump) as { configs: { resources: { name: string }[] }[] }).configs.flatMap((c) => c.resources);
    const tlsContext = /TlsContext|tls_certificate|sds_secret|"transport_?socket(_matches)?":\s*[{[]/i;
    const of = (name: string) => JSON.stringify(entries.filter((e) => e.name === name));
    expect(of('0.0.0.0_15443')).to.contain(SNI).and.not.match(tlsContext);
    expect(of(SNI)).to.not.equal('[]').and.not.match(tlsContext);
    expect(of('terminating')).to.match(tlsContext);
  });

  it('refuses an SNI it does not serve and plaintext', async () => {
    let err: Error | undefined;
    await connect('outbound_.9999_._.other.default.svc.cluster.local').catch((e: Error) => { err = e; });
    expect(err, 'unknown SNI').to.not.equal(undefined);
    const plain = await new Promise<string>((resolve) => {
      const s = net.connect(gw.port('0.0.0.0_15443'), '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      let got = '';
      s.on('data', (d: Buffer) => { got += d.toString(); });
      s.on('close', () => resolve(got));
      s.on('error', () => undefined);
    });
    expect(plain).to.equal('');
  });
});
