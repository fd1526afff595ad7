import { expect } from 'chai';
import { startWatchdog, watchdogIntervalMs } from '../src/systemd/watchdog.js';

describe('proxy: systemd watchdog', () => {
  it('interval is half of WATCHDOG_USEC, and off without it or for another pid', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).to.equal(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).to.equal(15_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).to.equal(null);
    expect(watchdogIntervalMs({}, 42)).to.equal(null);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' }, 42)).to.equal(null);
  });

  it('pings WATCHDOG=1 at once and on every tick until stopped; a failing notify does not throw', () => {
    const sent: string[] = [];
    let tick: (() => void) | null = null;
    let intervalMs = 0;
    let cleared = false;
    let unrefed = false;
    const stop = startWatchdog({
      env: { WATCHDOG_USEC: '10000000' }, pid: 1,
      notify: (s) => { sent.push(s); if (sent.length === 2) throw new Error('socket gone'); return true; },
      setInterval: (fn, ms) => { tick = fn; intervalMs = ms; return { unref: () => { unrefed = true; } }; },
      clearInterval: () => { cleared = true; },
    });
    expect(intervalMs).to.equal(5_000);
    expect(unrefed).to.equal(true);
    expect(sent).to.deep.equal(['WATCHDOG=1']);
    tick!();
    tick!();
    expect(sent).to.deep.equal(['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
    stop();
    expect(cleared).to.equal(true);
  });

  it('without WATCHDOG_USEC nothing is sent and no timer is made', () => {
    const sent: string[] = [];
    const stop = startWatchdog({ env: {}, pid: 1, notify: (s) => { sent.push(s); return true; }, setInterval: () => { throw new Error('no timer expected'); } });
    stop();
    expect(sent).to.deep.equal([]);
  });
});
