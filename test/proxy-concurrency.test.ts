/**
 * `--concurrency 2`: the real binary with two worker processes sharing one listener; the primary's health,
 * Prometheus and admin ports answer for both (readiness of all, counters summed), and SIGTERM drains and exits.
 */
import { expect } from 'chai';
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { TYPE_URL } from '@trellis/api';
import { FakeAdsServer } from '@trellis/testing';
import { hcm, until } from './proxy-fixtures.js';

const BIN = fileURLToPath(new URL('../packages/proxy/bin/trellis-proxy.js', import.meta.url));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

describe('proxy: --concurrency (worker processes sharing listeners)', function () {
  this.timeout(40_000);
  let ads: FakeAdsServer;
  let child: ChildProcess;
  let ports: Record<'http' | 'admin' | 'prom' | 'health', number>;
  let stderr = '';

  before(async () => {
    ads = await new FakeAdsServer().start();
    ports = { http: await freePort(), admin: await freePort(), prom: await freePort(), health: await freePort() };
    ads.set(TYPE_URL.listener, [{ name: 'http', address: { socket_address: { address: '127.0.0.1', port_value: ports.http } }, filter_chains: [{ filters: [hcm({ routeConfig: { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'hi' } } }] }] } })] }] }]);
    ads.set(TYPE_URL.cluster, []);
    child = spawn(process.execPath, [BIN, '--xds-address', ads.address, '--xds-plaintext', '--sds-socket', '', '--ip', '127.0.0.1', '--workload-name', 'conc',
      '--concurrency', '2', '--admin-port', String(ports.admin), '--prometheus-port', String(ports.prom), '--health-port', String(ports.health), '--outbound-port', '0', '--inbound-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    await until(async () => (await fetch(`http://127.0.0.1:${ports.health}/healthz/ready`).catch(() => null))?.status === 200, 25_000);
  });

  after(async () => {
    if (child && child.exitCode === null) { child.kill('SIGKILL'); await new Promise((r) => child.once('exit', r)); }
    await ads?.stop();
  });

  it('runs two workers, each with its own ADS stream, behind one listener', async () => {
    await until(() => new Set(ads.requests.filter((r) => r.typeUrl === TYPE_URL.listener).map((r) => r.nodeId)).size === 1 && ads.connections === 2);
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`http://127.0.0.1:${ports.http}/`, { headers: { connection: 'close' } });
      expect(await r.text()).to.equal('hi');
    }
  });

  it('sums istio_requests_total across workers on the primary Prometheus port', async () => {
    const text = await (await fetch(`http://127.0.0.1:${ports.prom}/stats/prometheus`)).text();
    const line = text.split('\n').find((l) => l.startsWith('istio_requests_total{'))!;
    expect(Number(line.slice(line.lastIndexOf(' ') + 1))).to.equal(20);
    expect(text.split('\n').filter((l) => l.startsWith('# TYPE istio_requests_total')).length).to.equal(1);
  });

  it('answers admin from the workers', async () => {
    const listeners = await (await fetch(`http://127.0.0.1:${ports.admin}/listeners`)).text();
    expect(listeners).to.contain(`http::127.0.0.1:${ports.http}`);
    expect((await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status).to.equal(200);
  });

  it('SIGTERM drains the workers and the primary exits 0', async () => {
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code, stderr).to.equal(0);
  });
});
