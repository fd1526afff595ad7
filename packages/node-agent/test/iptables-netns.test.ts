/**
 * The capture rules applied for real, inside two network namespaces this test creates (`trellis-t-<random>a`, the
 * "VM" with capture, and `…b`, a peer on a veth pair) and always deletes. Needs root, `ip`, `iptables` and
 * `setpriv`; skipped with the reason otherwise.
 *
 * A listener script in each namespace answers every TCP connection (and UDP datagram) with the local port it
 * arrived on, so a client sees where capture sent it: 15001 (outbound), 15006 (inbound), 15053 (DNS) or the port it
 * asked for (not captured).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { installCapture, spawnRunner, uninstallCapture } from '../src/iptables/apply.js';

const LISTENER = `
const net = require('net'), dgram = require('dgram');
const [host, tcpPorts, udpPorts] = process.argv.slice(1);
let pending = 0;
const ready = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
for (const p of tcpPorts.split(',').filter(Boolean).map(Number)) {
  pending++;
  net.createServer((s) => s.end(String(s.localPort))).listen(p, host, ready);
}
for (const p of udpPorts.split(',').filter(Boolean).map(Number)) {
  pending++;
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(String(p), r.port, r.address));
  u.bind(p, host, ready);
}
process.stdin.on('end', () => process.exit(0)).resume();
`;

const CLIENT = `
const net = require('net'), dgram = require('dgram');
const [proto, host, port] = process.argv.slice(1);
const done = (v) => { process.stdout.write(v); process.exit(0); };
setTimeout(() => done('timeout'), 1500);
if (proto === 'tcp') {
  const s = net.connect(Number(port), host); let b = '';
  s.on('data', (d) => (b += d)).on('end', () => done(b)).on('error', (e) => done(e.code));
} else {
  const u = dgram.createSocket('udp4');
  // A real resolver only accepts an answer from the address it asked: report any other source.
  u.on('message', (m, r) => done(String(m) + (r.address === host && r.port === Number(port) ? '' : ' from ' + r.address + ':' + r.port)));
  u.send('q', Number(port), host);
}
`;

const proxyModule = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'dns', 'proxy.ts');

/** Runs the real DnsProxy (through tsx) with a name table; prints `ready` once listening. */
const DNS_PROXY = `
const { DnsProxy } = await import(process.argv[1]);
const [host, port, upstreams, table] = process.argv.slice(2);
const dns = new DnsProxy({ hosts: [host], port: Number(port), namespace: 'default', timeoutMs: 1000,
  ...(upstreams === 'resolv.conf' ? {} : { upstreams: JSON.parse(upstreams) }) });
await dns.start();
dns.setNameTable(JSON.parse(table));
process.stdout.write('ready\\n');
process.stdin.on('end', () => dns.close().then(() => process.exit(0))).resume();
`;

function canRun(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and iptables)';
  for (const tool of ['ip', 'iptables', 'iptables-restore', 'iptables-save', 'ip6tables-save', 'setpriv']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (apt-get install -y iptables iproute2 util-linux)`;
  }
  return null;
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const BUILTIN = /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /;

/** Every rule and user chain, one per line prefixed by its table (empty tables and counters left out). */
function save(ns: string, tool: 'iptables-save' | 'ip6tables-save'): string {
  let table = '';
  const out: string[] = [];
  for (const l of sh('ip', ['netns', 'exec', ns, tool]).split('\n')) {
    if (l.startsWith('*')) table = l.slice(1);
    else if (l.startsWith('-A ') || (l.startsWith(':') && !BUILTIN.test(l))) out.push(`${table} ${l.replace(/\[\d+:\d+\]/, '[0:0]')}`);
  }
  return out.join('\n');
}

async function startListener(ns: string, host: string, tcp: number[], udp: number[], gid?: number): Promise<ChildProcess> {
  return startScript(ns, ['-e', LISTENER, host, tcp.join(','), udp.join(',')], gid);
}

async function startScript(ns: string, args: string[], gid?: number): Promise<ChildProcess> {
  const priv = gid === undefined ? [] : ['setpriv', `--regid=${gid}`, '--clear-groups'];
  const child = spawn('ip', ['netns', 'exec', ns, ...priv, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`listener in ${ns} exited ${code}`)));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('ready') && resolve());
  });
  return child;
}

/** Where a connection from `ns` (optionally as another uid/gid) to host:port ended up. */
function reach(ns: string, proto: 'tcp' | 'udp', host: string, port: number, as?: { uid?: number; gid?: number }): string {
  const priv = as === undefined ? [] : ['setpriv', ...(as.uid !== undefined ? [`--reuid=${as.uid}`] : []), ...(as.gid !== undefined ? [`--regid=${as.gid}`] : []), '--clear-groups'];
  return sh('ip', ['netns', 'exec', ns, ...priv, process.execPath, '-e', CLIENT, proto, host, String(port)]);
}

describe('iptables: applied in a network namespace (root)', function () {
  this.timeout(20_000);
  const id = randomBytes(3).toString('hex');
  const vm = `trellis-t-${id}a`;
  const peer = `trellis-t-${id}b`;
  const listeners: ChildProcess[] = [];

  before(function () {
    const reason = canRun();
    if (reason !== null) {
      this.test!.parent!.title += ` — skipped: ${reason}`;
      this.skip();
    }
    sh('ip', ['netns', 'add', vm]);
    sh('ip', ['netns', 'add', peer]);
    sh('ip', ['-n', vm, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', peer, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', vm, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', peer]);
    sh('ip', ['-n', vm, 'addr', 'add', '10.231.0.1/24', 'dev', 'veth0']);
    sh('ip', ['-n', peer, 'addr', 'add', '10.231.0.2/24', 'dev', 'veth1']);
    sh('ip', ['-n', vm, 'link', 'set', 'veth0', 'up']);
    sh('ip', ['-n', peer, 'link', 'set', 'veth1', 'up']);
    sh('ip', ['-n', vm, 'route', 'add', 'default', 'via', '10.231.0.2']);
  });

  afterEach(async () => {
    const running = listeners.splice(0);
    const stopping = running.map((l) => new Promise((r) => (l.exitCode !== null ? r(null) : l.once('exit', r))));
    // Closing stdin ends the scripts; kill is the fallback.
    for (const l of running) l.stdin?.end();
    const timer = setTimeout(() => running.forEach((l) => l.kill()), 2000);
    await Promise.all(stopping);
    clearTimeout(timer);
  });

  after(() => {
    for (const l of listeners) l.kill();
    rmSync(`/etc/netns/${vm}`, { recursive: true, force: true });
    spawnSync('ip', ['netns', 'del', vm]);
    spawnSync('ip', ['netns', 'del', peer]);
  });

  it('install twice gives the same rules; uninstall keeps the host rules and removes every TRELLIS chain', async () => {
    const run = spawnRunner(vm);
    sh('ip', ['netns', 'exec', vm, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9999', '-j', 'RETURN']);
    sh('ip', ['netns', 'exec', vm, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '9998', '-j', 'ACCEPT']);
    sh('ip', ['netns', 'exec', vm, 'ip6tables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9999', '-j', 'RETURN']);
    const before4 = save(vm, 'iptables-save');
    const before6 = save(vm, 'ip6tables-save');

    await installCapture({}, run);
    const once4 = save(vm, 'iptables-save');
    const once6 = save(vm, 'ip6tables-save');
    expect(once4).to.include('nat :TRELLIS_OUTPUT').and.include('nat -A OUTPUT -j TRELLIS_OUTPUT').and.include('raw -A OUTPUT -p udp -j TRELLIS_DNS_CT');
    expect(once6).to.include('nat :TRELLIS_OUTPUT').and.include('-s ::6/128');
    // The jumps come first, so the host's early RETURN cannot bypass capture.
    expect(once4.indexOf('nat -A OUTPUT -j TRELLIS_OUTPUT')).to.be.lessThan(once4.indexOf('--dport 9999 -j RETURN'));

    await installCapture({}, run);
    expect(save(vm, 'iptables-save')).to.equal(once4);
    expect(save(vm, 'ip6tables-save')).to.equal(once6);

    await uninstallCapture({}, run);
    const after4 = save(vm, 'iptables-save');
    const after6 = save(vm, 'ip6tables-save');
    expect(after4).to.not.include('TRELLIS');
    expect(after6).to.not.include('TRELLIS');
    expect(after4).to.equal(before4);
    expect(after6).to.equal(before6);
    await uninstallCapture({}, run); // nothing installed: still fine
  });

  it('redirects outbound TCP to 15001, inbound to 15006 and DNS to 15053, except the proxy uid/gid and excluded ports', async () => {
    listeners.push(await startListener(vm, '0.0.0.0', [15001, 15006, 22, 8080], []));
    // The DNS proxy runs in the agent, whose primary group is the proxy gid (its answers leave in conntrack zone 2),
    // and binds 127.0.0.1, the address REDIRECT sends locally generated packets to (so answers are un-NATed).
    listeners.push(await startListener(vm, '127.0.0.1', [], [15053], 1337));
    listeners.push(await startListener(peer, '0.0.0.0', [7000, 8080], [53]));
    await installCapture({ ipv6: false }, spawnRunner(vm));
    try {
      // Outbound from an ordinary process (root here): captured.
      expect(reach(vm, 'tcp', '10.231.0.2', 7000)).to.equal('15001');
      expect(reach(vm, 'tcp', '192.0.2.10', 80)).to.equal('15001');
      // The proxy (uid 1337) and the agent (gid 1337 as primary group): not captured.
      expect(reach(vm, 'tcp', '10.231.0.2', 7000, { uid: 1337, gid: 1337 })).to.equal('7000');
      expect(reach(vm, 'tcp', '10.231.0.2', 7000, { uid: 0, gid: 1337 })).to.equal('7000');
      expect(reach(vm, 'tcp', '10.231.0.2', 7000, { uid: 1000, gid: 1000 })).to.equal('15001');
      // Loopback is not captured.
      expect(reach(vm, 'tcp', '127.0.0.1', 8080)).to.equal('8080');
      // DNS: everyone's UDP 53 goes to the DNS proxy, the proxy's own does not.
      expect(reach(vm, 'udp', '10.231.0.2', 53)).to.equal('15053');
      expect(reach(vm, 'udp', '10.231.0.2', 53, { uid: 1337, gid: 1337 })).to.equal('53');
      // Inbound: captured to 15006, except the excluded ports (22 here).
      expect(reach(peer, 'tcp', '10.231.0.1', 8080)).to.equal('15006');
      expect(reach(peer, 'tcp', '10.231.0.1', 22)).to.equal('22');
    } finally {
      await uninstallCapture({ ipv6: false }, spawnRunner(vm));
    }
    // Rules gone: nothing is redirected any more.
    expect(reach(vm, 'tcp', '10.231.0.2', 7000)).to.equal('7000');
    expect(reach(peer, 'tcp', '10.231.0.1', 8080)).to.equal('8080');
  });

  it('resolves mesh names through the real DNS proxy under capture, and forwards the rest past capture', async () => {
    // The VM's resolv.conf (ip netns exec bind-mounts /etc/netns/NS/resolv.conf) names the peer as its resolver.
    mkdirSync(`/etc/netns/${vm}`, { recursive: true });
    writeFileSync(`/etc/netns/${vm}/resolv.conf`, 'nameserver 10.231.0.2\nsearch corp.example\noptions timeout:2 attempts:1\n');
    // The peer's "upstream resolver" is a DnsProxy answering example.test from its own table.
    const upstreamTable = { table: { 'example.test': { ips: ['192.0.2.1'] } } };
    listeners.push(await startScript(peer, ['--import', 'tsx', '--input-type=module', '-e', DNS_PROXY, proxyModule, '10.231.0.2', '53', '[]', JSON.stringify(upstreamTable)]));
    // The agent's DNS proxy: primary group 1337, 127.0.0.1:15053, upstreams from the VM's resolv.conf.
    const meshTable = { table: { 'reviews.default.svc.cluster.local': { ips: ['10.96.0.12'], shortname: 'reviews', namespace: 'default' } } };
    listeners.push(await startScript(vm, ['--import', 'tsx', '--input-type=module', '-e', DNS_PROXY, proxyModule, '127.0.0.1', '15053', 'resolv.conf', JSON.stringify(meshTable)], 1337));
    await installCapture({ ipv6: false }, spawnRunner(vm));
    try {
      const getent = (name: string): string => sh('ip', ['netns', 'exec', vm, 'setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', 'getent', 'ahostsv4', name]).split(/\s+/)[0]!;
      // glibc tries reviews.corp.example (search list) first: a mesh name.
      expect(getent('reviews')).to.equal('10.96.0.12');
      expect(getent('reviews.default.svc.cluster.local')).to.equal('10.96.0.12');
      // Not a mesh name: the agent forwards it to 10.231.0.2:53; its own query is not captured (gid 1337).
      expect(getent('example.test')).to.equal('192.0.2.1');
    } finally {
      await uninstallCapture({ ipv6: false }, spawnRunner(vm));
    }
  });
});
