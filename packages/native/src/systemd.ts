/**
 * systemd's notify protocol for the `Type=notify` units (trellis-control, trellis-agent, trellis-proxy): `READY=1`,
 * `STATUS=…`, `STOPPING=1`, and `WATCHDOG=1` every half of `WATCHDOG_USEC` when the unit sets `WatchdogSec=` (and
 * `WATCHDOG_PID`, if set, is this process). Without NOTIFY_SOCKET every call is a no-op. Nothing here throws: a
 * failed send (socket gone) goes to `onError`, because systemd trouble must never stop a process from serving.
 */
import { sdNotify } from './index.js';

/** Half of WATCHDOG_USEC in ms, or null when the watchdog is off or meant for another process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC ?? '');
  if (!Number.isFinite(usec) || usec <= 0) return null;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

export interface SystemdNotifierOptions {
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Default `process.pid`. */
  readonly pid?: number;
  /** Default `sdNotify`; returns false without NOTIFY_SOCKET and may throw when the socket is gone. */
  readonly notify?: (state: string) => boolean;
  readonly onError?: (state: string, err: unknown) => void;
}

export class SystemdNotifier {
  readonly #env: NodeJS.ProcessEnv;
  readonly #pid: number;
  readonly #notify: (state: string) => boolean;
  readonly #onError: ((state: string, err: unknown) => void) | undefined;
  #stopWatchdog: (() => void) | undefined;

  constructor(o: SystemdNotifierOptions = {}) {
    this.#env = o.env ?? process.env;
    this.#pid = o.pid ?? process.pid;
    this.#notify = o.notify ?? sdNotify;
    this.#onError = o.onError;
  }

  send(state: string): void {
    try {
      this.#notify(state);
    } catch (err) {
      this.#onError?.(state, err);
    }
  }

  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${status}`);
  }

  status(status: string): void {
    this.send(`STATUS=${status}`);
  }

  /** Stops the watchdog pings and says `STOPPING=1`. */
  stopping(): void {
    this.#stopWatchdog?.();
    this.send('STOPPING=1');
  }

  watchdogIntervalMs(): number | null {
    return watchdogIntervalMs(this.#env, this.#pid);
  }

  /**
   * Pings the watchdog (once now, then every interval) until `stopping()` or `signal` aborts; `healthy()` false
   * skips a ping, so systemd restarts a process that is stuck. A no-op when the watchdog is off.
   */
  startWatchdog(healthy: () => boolean = () => true, signal?: AbortSignal): void {
    const ms = this.watchdogIntervalMs();
    if (ms === null || this.#stopWatchdog) return;
    const ping = () => { if (healthy()) this.send('WATCHDOG=1'); };
    ping();
    const timer = setInterval(ping, ms);
    timer.unref();
    this.#stopWatchdog = () => clearInterval(timer);
    signal?.addEventListener('abort', () => clearInterval(timer), { once: true });
  }
}
