/** A minimal leveled logger passed in explicitly (the data path never logs per request). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'off';

export interface Logger {
  level: LogLevel;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

export function isLogLevel(s: string): s is LogLevel {
  return s in ORDER;
}

/** JSON lines on a writable (stderr by default). */
export function createLogger(level: LogLevel = 'info', out: { write(s: string): unknown } = process.stderr): Logger {
  const logger: Logger = {
    level,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
  function emit(l: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[l] < ORDER[logger.level]) return;
    out.write(JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields }) + '\n');
  }
  return logger;
}

export const silentLogger = (): Logger => createLogger('off');
