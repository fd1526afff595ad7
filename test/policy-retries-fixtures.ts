/**
 * A real mesh in one test process for the retry/timeout tests: trellis-control (a child process) watching a config
 * directory of Istio YAML, and a trellis Proxy (in-process, so the test can read its cluster stats) that gets its
 * config from that control plane over plaintext ADS and no SDS (the services here are MESH_EXTERNAL, plaintext; inbound listeners wait for secrets, unused here). There is no iptables
 * capture here: the client connects to the proxy's outbound capture listener and the test says which original
 * destination that connection had (`Mesh.dst`), exactly what SO_ORIGINAL_DST would have told the proxy.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Proxy, nodeIdentity, silentLogger } from '@trellis/proxy';
import { eventually, startControl, type ControlProcess } from './processes.js';

export interface Mesh {
  readonly proxy: Proxy;
  readonly control: ControlProcess;
  /** The outbound capture port (15001 in production). */
  readonly outboundPort: number;
  /** The original destination of the next connections to the capture port. */
  dst: { address: string; port: number };
  /** Replaces the YAML file `name` in the config directory and waits until `ready` holds on the proxy. */
  apply(name: string, yaml: string, ready: (p: Proxy) => boolean): Promise<void>;
  stop(): Promise<void>;
}

export async function startMesh(files: Record<string, string>, ready: (p: Proxy) => boolean): Promise<Mesh> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-retries-'));
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(cfg, name), text);
  let control: ControlProcess | null = null;
  let proxy: Proxy | null = null;
  try {
    control = await startControl([
      '--config-dir', cfg, '--state-dir', join(dir, 'state'), '--listen-xds', 'off', '--listen-xds-plaintext', '127.0.0.1:0',
      '--listen-http', 'off', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext']);
    const mesh: { dst: { address: string; port: number } } = { dst: { address: '127.0.0.1', port: 1 } };
    proxy = new Proxy({
      node: nodeIdentity({ mode: 'sidecar', ip: '10.63.0.10', workloadName: 'client', namespace: 'default', serviceAccount: 'client', labels: { app: 'client' }, clusterId: 'Kubernetes', network: '' }),
      xds: { target: control.addresses['xds-plaintext'], credentials: grpc.credentials.createInsecure() },
      sdsSocket: null,
      logger: silentLogger(),
      ports: { outbound: 0, inbound: 0, admin: 0, prometheus: 0, health: 0 },
      bindAddress: '127.0.0.1', adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
      namespace: 'default', serviceAccount: 'client', workloadName: 'client',
      originalDst: () => mesh.dst,
    });
    await proxy.start();
    const p = proxy;
    await eventually('the proxy has its config from the control plane', () => p.listeners.port('virtualOutbound') !== undefined && ready(p), 20_000);
    const c = control;
    return Object.assign(mesh, {
      proxy: p, control: c, outboundPort: p.listeners.port('virtualOutbound')!,
      async apply(name: string, yaml: string, isReady: (px: Proxy) => boolean) {
        writeFileSync(join(cfg, name), yaml);
        await eventually(`config ${name} reached the proxy`, () => isReady(p), 20_000);
      },
      async stop() {
        await p.close();
        await c.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    });
  } catch (err) {
    await proxy?.close();
    await control?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
