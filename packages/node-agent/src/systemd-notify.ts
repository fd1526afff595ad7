/**
 * systemd notify protocol through `@trellis/native` `sdNotify`: `READY=1`, `STATUS=…`, `STOPPING=1`, and
 * `WATCHDOG=1` every half of `WATCHDOG_USEC` when the unit sets `WatchdogSec=` (and `WATCHDOG_PID`, if set, is
 * this process). Without NOTIFY_SOCKET every call is a no-op.
 */
import { sdNotify } from '@trellis/native';
import type { Logger } from './observer.js';

export interface NotifierOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly notify?: (state: string) => boolean;
  readonly logger?: Logger;
  readonly pid?: number;
}

export class SystemdNotifier {
  readonly #env: NodeJS.ProcessEnv;
  readonly #notify: (state: string) => boolean;
  readonly #logger: Logger | undefined;
  readonly #pid: number;

  constructor(options: NotifierOptions = {}) {
    this.#env = options.env ?? process.env;
    this.#notify = options.notify ?? sdNotify;
    this.#logger = options.logger;
    this.#pid = options.pid ?? process.pid;
  }

  /** Sends one state line; a failure (socket gone) is logged, never thrown: systemd trouble must not stop serving. */
  send(state: string): void {
    try {
      this.#notify(state);
    } catch (e) {
      this.#logger?.warn('systemd notify failed', { state, error: (e as Error).message });
    }
  }

  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${status}`);
  }

  status(status: string): void {
    this.send(`STATUS=${status}`);
  }

  /** Watchdog interval in ms (half of WATCHDOG_USEC), or null when the watchdog is off or meant for another pid. */
  watchdogIntervalMs(): number | null {
    const usec = Number(this.#env.WATCHDOG_USEC ?? '');
    if (!Number.isFinite(usec) || usec <= 0) return null;
    const pid = this.#env.WATCHDOG_PID;
    if (pid !== undefined && pid !== '' && Number(pid) !== this.#pid) return null;
    return Math.max(1, Math.floor(usec / 2000));
  }

  /** Pings the watchdog until `signal` aborts; `healthy()` false skips a ping so systemd notices a stuck agent. */
  startWatchdog(signal: AbortSignal, healthy: () => boolean = () => true): void {
    const interval = this.watchdogIntervalMs();
    if (interval === null) return;
    const timer = setInterval(() => {
      if (healthy()) this.send('WATCHDOG=1');
    }, interval);
    timer.unref();
    signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  }
}
