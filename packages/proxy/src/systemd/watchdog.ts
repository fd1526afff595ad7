/**
 * systemd watchdog for `Type=notify` units with `WatchdogSec=`: sends `WATCHDOG=1` every half of `WATCHDOG_USEC`
 * (systemd restarts the service when a ping is missed), only when `WATCHDOG_USEC` is set and `WATCHDOG_PID`, if
 * set, is this process. The timer is unref'd and a failing notify never throws: systemd trouble must not stop the
 * data path.
 */
export interface WatchdogOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly pid: number;
  /** `@trellis/native` `sdNotify` in production. */
  readonly notify: (state: string) => boolean;
  readonly setInterval?: (fn: () => void, ms: number) => { unref(): unknown };
  readonly clearInterval?: (t: unknown) => void;
}

/** Half of WATCHDOG_USEC in ms, or null when the watchdog is off or meant for another process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC ?? '');
  if (!Number.isFinite(usec) || usec <= 0) return null;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && Number(wpid) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

/** Starts pinging; returns a stop function (a no-op when the watchdog is off). */
export function startWatchdog(o: WatchdogOptions): () => void {
  const ms = watchdogIntervalMs(o.env, o.pid);
  if (ms === null) return () => {};
  const set = o.setInterval ?? setInterval;
  const clear = o.clearInterval ?? ((t: unknown) => clearInterval(t as NodeJS.Timeout));
  const ping = () => { try { o.notify('WATCHDOG=1'); } catch { /* socket gone: keep serving */ } };
  ping();
  const t = set(ping, ms);
  t.unref();
  return () => clear(t);
}
