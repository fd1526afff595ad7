import { expect } from 'chai';
import { SystemdNotifier, watchdogIntervalMs } from '../src/index.js';

describe('native: systemd notifier (shared by trellis-control, trellis-agent, trellis-proxy)', () => {
  it('sends READY=1 with STATUS, STATUS alone, and STOPPING=1', () => {
    const sent: string[] = [];
    const n = new SystemdNotifier({ env: {}, notify: (s) => (sent.push(s), true) });
    n.ready('serving spiffe://td/ns/a/sa/b');
    n.status('renewing');
    n.stopping();
    expect(sent).to.deep.equal(['READY=1\nSTATUS=serving spiffe://td/ns/a/sa/b', 'STATUS=renewing', 'STOPPING=1']);
  });

  it('never throws when the notify socket fails: the failure goes to onError', () => {
    const errors: string[] = [];
    const n = new SystemdNotifier({ env: {}, notify: () => { throw new Error('ECONNREFUSED'); }, onError: (state, err) => errors.push(`${state}: ${(err as Error).message}`) });
    expect(() => n.ready('x')).to.not.throw();
    expect(errors).to.deep.equal(['READY=1\nSTATUS=x: ECONNREFUSED']);
  });

  it('the watchdog interval is half of WATCHDOG_USEC, and off without it or for another pid', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).to.equal(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).to.equal(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).to.equal(null);
    expect(watchdogIntervalMs({}, 42)).to.equal(null);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42)).to.equal(null);
    expect(new SystemdNotifier({ env: { WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, pid: 2 }).watchdogIntervalMs()).to.equal(null);
  });

  it('pings at once and every half of WATCHDOG_USEC until stopping(), or until the signal aborts', async () => {
    const sent: string[] = [];
    const n = new SystemdNotifier({ env: { WATCHDOG_USEC: '20000' }, notify: (s) => (sent.push(s), true) });
    n.startWatchdog();
    expect(sent).to.deep.equal(['WATCHDOG=1']);
    while (sent.length < 3) await new Promise((r) => setTimeout(r, 5));
    n.stopping();
    const count = sent.length;
    await new Promise((r) => setTimeout(r, 40));
    expect(sent.length).to.equal(count);
    expect(sent.at(-1)).to.equal('STOPPING=1');

    const aborted: string[] = [];
    const controller = new AbortController();
    new SystemdNotifier({ env: { WATCHDOG_USEC: '20000' }, notify: (s) => (aborted.push(s), true) }).startWatchdog(() => true, controller.signal);
    controller.abort();
    await new Promise((r) => setTimeout(r, 40));
    expect(aborted).to.deep.equal(['WATCHDOG=1']);
  });

  it('skips pings while unhealthy, and does nothing at all without WATCHDOG_USEC', async () => {
    const sent: string[] = [];
    const n = new SystemdNotifier({ env: { WATCHDOG_USEC: '10000' }, notify: (s) => (sent.push(s), true) });
    let ticks = 0;
    n.startWatchdog(() => (ticks++, false));
    while (ticks < 3) await new Promise((r) => setTimeout(r, 5));
    n.stopping();
    expect(sent).to.deep.equal(['STOPPING=1']);
    const off = new SystemdNotifier({ env: {}, notify: (s) => (sent.push(s), true) });
    off.startWatchdog();
    expect(sent).to.deep.equal(['STOPPING=1']);
  });
});
