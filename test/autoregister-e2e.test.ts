/**
 * Auto-registration end to end over loopback (issue 7, item 3): trellis-control (TLS xDS, a config dir with a
 * WorkloadGroup that has an HTTP readiness probe and a ServiceEntry selecting its labels), `trellisctl vm configure`
 * (the bundle carries probe.json), and trellis-agent with `--workload-ip 127.0.0.1` probing a tiny app in this test.
 * Observed through `/debug/endpointz`: the endpoint appears HEALTHY, turns UNHEALTHY when the app stops, and is
 * removed once the agent is killed and the 1 s grace has passed.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_BIN, ctl, eventually, start, startControl, stop, waitHttp, type ControlProcess, type Proc } from './processes.js';

const HOST = 'billing.shop.svc.cluster.local';

interface Endpoint { name: string; address: string; health: string; labels: Record<string, string>; serviceAccount: string; shard: string; ports: Record<string, number> }

describe('auto-registration end to end: control + vm configure + agent + readiness probe', function () {
  this.timeout(90_000);
  let dir: string;
  let control: ControlProcess;
  let http: string;
  let app: Server;
  let agent: Proc | undefined;

  const endpoints = async (): Promise<Endpoint[]> => {
    const body = await (await fetch(`${http}/debug/endpointz`)).json() as { services?: { hostname: string; endpoints: Endpoint[] }[] };
    return body.services?.find((s) => s.hostname === HOST)?.endpoints ?? [];
  };
  const registered = async (): Promise<Endpoint | undefined> => (await endpoints()).find((e) => e.shard === 'control:autoregistered');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-autoreg-e2e-'));
    app = createServer((req, res) => res.writeHead(req.url === '/ready' ? 200 : 404).end('ok'));
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const appPort = (app.address() as AddressInfo).port;
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'billing.yaml'), `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: { name: billing-vms, namespace: shop }
spec:
  metadata:
    labels: { app: billing }
  template:
    serviceAccount: billing
    labels: { version: v1 }
    ports: { http: ${appPort} }
  probe:
    periodSeconds: 1
    timeoutSeconds: 1
    failureThreshold: 1
    httpGet: { path: /ready, port: ${appPort} }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: billing, namespace: shop }
spec:
  hosts: [${HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector:
    labels: { app: billing }
`);
    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'control-state'), '--listen-xds', '127.0.0.1:0',
      '--listen-xds-plaintext', 'off', '--listen-http', '127.0.0.1:0', '--workload-entry-grace', '1s',
      '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds', 'http']);
    http = `http://${control.addresses.http}`;
    await waitHttp(`${http}/ready`, (s) => s === 200);
  });

  after(async () => {
    if (agent) await stop(agent);
    await control?.stop();
    app?.closeAllConnections();
    app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers the VM, follows its readiness probe, and removes it after the grace period', async () => {
    const bundle = join(dir, 'bundle');
    const out = await eventually('vm configure', async () => {
      const r = await ctl(['vm', 'configure', '--workload-group', 'billing-vms', '--namespace', 'shop', '--out', bundle, '--control', http]);
      if (r.code !== 0 && !r.out.includes('TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN')) throw new Error(r.out);
      return r.code === 0 ? r.out : undefined;
    }, 10_000);
    expect(out).to.contain('probe.json');
    expect(JSON.parse(readFileSync(join(bundle, 'probe.json'), 'utf8'))).to.deep.include({ periodSeconds: 1, failureThreshold: 1 });

    agent = start(AGENT_BIN, [
      '--bundle', bundle, '--state-dir', join(dir, 'agent-state'), '--sds-socket', join(dir, 'run', 'sds', 'socket'),
      '--listen-http', '127.0.0.1:0', '--dns-listen', 'off', '--workload-ip', '127.0.0.1', '--locality', 'eu/eu-1/rack-a',
    ]);

    const healthy = await eventually('a HEALTHY auto-registered endpoint', async () => {
      const e = await registered();
      return e?.health === 'HEALTHY' ? e : undefined;
    }, 30_000);
    expect(healthy).to.deep.include({ name: 'billing-vms-127.0.0.1', address: '127.0.0.1', serviceAccount: 'billing' });
    expect(healthy.labels).to.include({ app: 'billing', version: 'v1', 'trellis.dev/workload-group': 'billing-vms' });
    expect(control.lines.join('\n')).to.match(/"event":"workload registered".*"entry":"shop\/billing-vms-127.0.0.1"/);

    // The app goes away: the probe fails and the endpoint turns UNHEALTHY (it stays registered).
    app.closeAllConnections();
    app.close();
    await eventually('the endpoint UNHEALTHY', async () => (await registered())?.health === 'UNHEALTHY', 20_000);
    expect(agent.output()).to.match(/"msg":"readiness probe","healthy":false,"reason":"HTTP GET [^"]*ECONNREFUSED/);

    // The agent dies without a goodbye: the entry goes after the grace period.
    agent.child.kill('SIGKILL');
    await agent.exit;
    await eventually('the endpoint removed', async () => (await registered()) === undefined, 20_000);
    expect(control.lines.join('\n')).to.match(/"event":"workload unregistered".*"reason":"no stream for 1000 ms"/);
    expect(existsSync(join(dir, 'agent-state'))).to.equal(true);
  });
});
