import { expect } from 'chai';
import { SystemdNotifier } from '../src/index.js';

describe('node-agent: systemd notifier', () => {
  it('sends READY=1 with STATUS, and STATUS alone', () => {
    const sent: string[] = [];
    const n = new SystemdNotifier({ env: {}, notify: (s) => (sent.push(s), true) });
    n.ready('serving spiffe://td/ns/a/sa/b');
    n.status('renewing');
    expect(sent).to.deep.equal(['READY=1\nSTATUS=serving spiffe://td/ns/a/sa/b', 'STATUS=renewing']);
  });

  it('never throws when the notify socket fails', () => {
    const warnings: string[] = [];
    const n = new SystemdNotifier({
      env: {}, notify: () => { throw new Error('ECONNREFUSED'); },
      logger: { info() {}, warn: (m) => warnings.push(m), error() {} },
    });
    expect(() => n.ready('x')).to.not.throw();
    expect(warnings).to.deep.equal(['systemd notify failed']);
  });

  it('pings the watchdog every half of WATCHDOG_USEC, only for its own pid, and stops on abort', async () => {
    expect(new SystemdNotifier({ env: {} }).watchdogIntervalMs()).to.equal(null);
    expect(new SystemdNotifier({ env: { WATCHDOG_USEC: '30000000' } }).watchdogIntervalMs()).to.equal(15_000);
    expect(new SystemdNotifier({ env: { WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, pid: 2 }).watchdogIntervalMs()).to.equal(null);
    const sent: string[] = [];
    const n = new SystemdNotifier({ env: { WATCHDOG_USEC: '20000' }, notify: (s) => (sent.push(s), true) });
    const controller = new AbortController();
    n.startWatchdog(controller.signal);
    while (sent.length < 2) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const count = sent.length;
    await new Promise((r) => setTimeout(r, 40));
    expect(sent.length).to.equal(count);
    expect(new Set(sent)).to.deep.equal(new Set(['WATCHDOG=1']));
  });

  it('skips watchdog pings while unhealthy', async () => {
    const sent: string[] = [];
    const n = new SystemdNotifier({ env: { WATCHDOG_USEC: '10000' }, notify: (s) => (sent.push(s), true) });
    const controller = new AbortController();
    let ticks = 0;
    n.startWatchdog(controller.signal, () => (ticks++, false));
    while (ticks < 3) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    expect(sent).to.deep.equal([]);
  });
});
