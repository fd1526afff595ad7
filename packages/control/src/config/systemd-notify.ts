/**
 * systemd's notify protocol for `trellis-control` (unit `Type=notify`): `READY=1` once the first snapshot is built
 * and every listener is bound, `STATUS=…` lines, `STOPPING=1` at shutdown, and `WATCHDOG=1` every half of
 * `WATCHDOG_USEC` when the unit sets `WatchdogSec=` (and `WATCHDOG_PID`, if set, is this process).
 *
 * The sender is injected (`@trellis/native` `sdNotify` in main.ts): it returns false without `NOTIFY_SOCKET` and
 * may throw when the socket is gone. Nothing here ever throws: systemd trouble must not stop the control plane.
 */
export interface SystemdNotifierOptions {
  readonly notify: (state: string) => boolean;
  readonly env: NodeJS.ProcessEnv;
  readonly pid: number;
  readonly onError?: (err: unknown) => void;
}

export class SystemdNotifier {
  readonly #o: SystemdNotifierOptions;
  #timer: NodeJS.Timeout | undefined;
  #ready = false;

  constructor(options: SystemdNotifierOptions) {
    this.#o = options;
  }

  send(state: string): void {
    try {
      this.#o.notify(state);
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  /** `READY=1` with a status line, once; starts the watchdog pings. */
  ready(status: string): void {
    if (this.#ready) return;
    this.#ready = true;
    this.send(`READY=1\nSTATUS=${status}`);
    const ms = watchdogIntervalMs(this.#o.env, this.#o.pid);
    if (ms === null) return;
    this.#timer = setInterval(() => this.send('WATCHDOG=1'), ms);
    this.#timer.unref();
  }

  stopping(): void {
    clearInterval(this.#timer);
    this.send('STOPPING=1');
  }
}

/** Half of WATCHDOG_USEC in ms, or null when the watchdog is off or meant for another process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC ?? '');
  if (!Number.isFinite(usec) || usec <= 0) return null;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}
