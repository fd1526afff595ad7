/**
 * Transparent capture in a network namespace made by this test (root only): iptables/ip6tables REDIRECT traffic for
 * ports 8000/8001 to 15001, the trellis-proxy binary runs inside the namespace (config over a Unix-socket fake ADS,
 * which crosses namespaces), and picks the filter chain from the original destination read with SO_ORIGINAL_DST
 * (IPv4) and IP6T_SO_ORIGINAL_DST (IPv6). The namespace is always deleted in `after`.
 */
import { expect } from 'chai';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TYPE_URL } from '@trellis/api';
import { FakeAdsServer } from '@trellis/testing';
import { hcm, staticCluster, tcpProxy } from './proxy-fixtures.js';

const NS = `trellis-cap-${process.pid}`;
const BIN = fileURLToPath(new URL('../packages/proxy/bin/trellis-proxy.js', import.meta.url));

function whyNot(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and iptables)';
  for (const [cmd, args] of [['ip', ['netns', 'list']], ['iptables', ['--version']], ['ip6tables', ['--version']]] as const) {
    try { execFileSync(cmd, [...args], { stdio: 'ignore' }); } catch { return `${cmd} is unavailable`; }
  }
  return null;
}

const inNs = (...args: string[]) => execFileSync('ip', ['netns', 'exec', NS, ...args], { stdio: 'pipe' }).toString();

describe('proxy: transparent capture with SO_ORIGINAL_DST in a network namespace', function () {
  this.timeout(40_000);
  const reason = whyNot();
  let dir = '';
  let ads: FakeAdsServer | null = null;
  const children: ChildProcess[] = [];
  let created = false;

  before(async function () {
    if (reason) { this.skip(); return; }
    try {
      execFileSync('ip', ['netns', 'add', NS]);
      created = true;
      inNs('ip', 'link', 'set', 'lo', 'up');
      for (const tool of ['iptables', 'ip6tables']) for (const port of ['8000', '8001']) inNs(tool, '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', port, '-j', 'REDIRECT', '--to-ports', '15001');
    } catch (err) {
      this.skip();
      void err;
      return;
    }
    dir = mkdtempSync(join(tmpdir(), 'trellis-capture-'));
    ads = await new FakeAdsServer().startUnix(join(dir, 'ads.sock'));
    const direct = (status: number, body: string) => ({ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status, body: { inline_string: body } } }] }] });
    ads.set(TYPE_URL.listener, [
      { name: 'virtualOutbound', address: { socket_address: { address: '::', port_value: 15001 } }, use_original_dst: { value: true }, traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [tcpProxy('BlackHoleCluster')] }] },
      { name: '0.0.0.0_8000', address: { socket_address: { address: '0.0.0.0', port_value: 8000 } }, bind_to_port: { value: false }, traffic_direction: 'OUTBOUND', filter_chains: [
        { filter_chain_match: { prefix_ranges: [{ address_prefix: '127.0.0.0', prefix_len: { value: 8 } }] }, filters: [hcm({ routeConfig: direct(200, 'v4 8000') })] },
        { filter_chain_match: { prefix_ranges: [{ address_prefix: '::1', prefix_len: { value: 128 } }] }, filters: [hcm({ routeConfig: direct(200, 'v6 8000') })] },
      ] },
      { name: '0.0.0.0_8001', address: { socket_address: { address: '0.0.0.0', port_value: 8001 } }, bind_to_port: { value: false }, traffic_direction: 'OUTBOUND', filter_chains: [{ filters: [hcm({ routeConfig: direct(200, 'port 8001') })] }] },
    ]);
    ads.set(TYPE_URL.cluster, [staticCluster('BlackHoleCluster', [])]);
    const proxy = spawn('ip', ['netns', 'exec', NS, process.execPath, BIN, '--xds-address', ads.address, '--xds-plaintext', '--sds-socket', '', '--ip', '127.0.0.1', '--workload-name', 'cap', '--log-level', 'info', '--concurrency', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(proxy);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`proxy did not become ready: ${err}`)), 20_000);
      proxy.stderr!.on('data', (d: Buffer) => { err += d; if (err.includes('first complete config applied')) { clearTimeout(t); resolve(); } });
      proxy.once('exit', (code) => { clearTimeout(t); reject(new Error(`proxy exited ${code}: ${err}`)); });
    });
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) { c.kill('SIGTERM'); await new Promise((r) => { c.once('exit', r); setTimeout(r, 3000); }); if (c.exitCode === null) c.kill('SIGKILL'); }
    await ads?.stop();
    if (created) try { execFileSync('ip', ['netns', 'delete', NS]); } catch { /* already gone */ }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (url: string) => inNs(process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async (r) => console.log(r.status + ' ' + await r.text()), (e) => console.log('ERR ' + e.cause?.code))`).trim();

  it(reason ? `(skipped: ${reason})` : 'IPv4: a connection to 127.0.0.1:8000 is redirected and served by the 8000 listener chain for 127.0.0.0/8', () => {
    expect(get('http://127.0.0.1:8000/')).to.equal('200 v4 8000');
  });

  it('IPv4: a different original port selects a different listener', () => {
    expect(get('http://127.0.0.1:8001/')).to.equal('200 port 8001');
  });

  it('IPv6: a connection to [::1]:8000 is redirected by ip6tables and matched by its IPv6 destination', () => {
    expect(get('http://[::1]:8000/')).to.equal('200 v6 8000');
  });
});
