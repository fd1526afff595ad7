import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { getOriginalDst, sdNotify, socketFd } from '../src/index.js';

/**
 * Node has no AF_UNIX datagram sockets, so the systemd side of the notify protocol is a tiny python3 receiver:
 * it binds the given address (a path, or an abstract name written `@name`), prints READY, then prints each
 * datagram it receives as one JSON line.
 */
const RECEIVER = `
import socket, sys, json
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print('READY', flush=True)
while True:
    data = s.recv(4096)
    print(json.dumps(data.decode()), flush=True)
`;

interface Receiver {
  readonly next: () => Promise<string>;
  readonly close: () => void;
}

async function startReceiver(address: string): Promise<Receiver> {
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const waiter = waiters.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const next = (): Promise<string> => {
    const line = lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve) => waiters.push(resolve));
  };
  expect(await next()).to.equal('READY');
  return { next: async () => JSON.parse(await next()) as string, close: () => child.kill() };
}

describe('native: sdNotify', () => {
  let dir: string;
  let saved: string | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-native-'));
    saved = process.env.NOTIFY_SOCKET;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.NOTIFY_SOCKET;
    else process.env.NOTIFY_SOCKET = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('is a no-op returning false without NOTIFY_SOCKET', () => {
    delete process.env.NOTIFY_SOCKET;
    expect(sdNotify('READY=1')).to.equal(false);
  });

  it('sends the state bytes to a unix datagram socket at a path', async () => {
    const path = join(dir, 'notify.sock');
    const receiver = await startReceiver(path);
    try {
      process.env.NOTIFY_SOCKET = path;
      expect(sdNotify('READY=1\nSTATUS=serving')).to.equal(true);
      expect(await receiver.next()).to.equal('READY=1\nSTATUS=serving');
      expect(sdNotify('WATCHDOG=1')).to.equal(true);
      expect(await receiver.next()).to.equal('WATCHDOG=1');
    } finally {
      receiver.close();
    }
  });

  it('sends to an abstract socket named @name', async () => {
    const name = `@trellis-native-test-${process.pid}-${Date.now()}`;
    const receiver = await startReceiver(name);
    try {
      process.env.NOTIFY_SOCKET = name;
      expect(sdNotify('STATUS=abstract')).to.equal(true);
      expect(await receiver.next()).to.equal('STATUS=abstract');
    } finally {
      receiver.close();
    }
  });

  it('throws TRELLIS_ERR_NATIVE when the socket does not exist', () => {
    process.env.NOTIFY_SOCKET = join(dir, 'missing.sock');
    expect(() => sdNotify('READY=1')).to.throw().with.property('code', 'TRELLIS_ERR_NATIVE');
  });
});

describe('native: getOriginalDst', () => {
  let server: Server;
  let client: Socket;
  let accepted: Socket;
  before(async () => {
    server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const acceptedP = once(server, 'connection');
    client = connect(port, '127.0.0.1');
    await once(client, 'connect');
    [accepted] = (await acceptedP) as [Socket];
  });
  after(() => {
    client.destroy();
    accepted.destroy();
    server.close();
  });

  it('returns null for a connection that was not redirected', () => {
    const fd = socketFd(accepted as unknown as { _handle?: { fd?: number } });
    expect(fd).to.be.greaterThan(2);
    expect(getOriginalDst(fd)).to.equal(null);
  });

  it('throws a clear TRELLIS_ERR_NATIVE error for a bad fd', () => {
    let error: (Error & { code?: string }) | undefined;
    try {
      getOriginalDst(987654);
    } catch (e) {
      error = e as Error & { code?: string };
    }
    expect(error, 'getOriginalDst(bad fd) should throw').to.be.instanceOf(Error);
    expect(error!.code).to.equal('TRELLIS_ERR_NATIVE');
    expect(error!.message).to.match(/EBADF|bad file descriptor/i);
  });
});
