/**
 * The process logger: one JSON object per line on stderr, `{"time","level","event",...fields}`. Passed in to every
 * part that logs; hot paths publish diagnostics_channel events instead.
 */
import type { LogLevel } from './settings.js';

export type LogFn = (level: LogLevel, event: string, fields?: Record<string, unknown>) => void;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(minLevel: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): LogFn {
  return (level, event, fields = {}) => {
    if (RANK[level] < RANK[minLevel]) return;
    const clean: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) clean[k] = v;
    write(JSON.stringify({ time: new Date().toISOString(), level, event, ...clean }) + '\n');
  };
}
