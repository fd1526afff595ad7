/**
 * Path-tracking readers over decoded protobuf objects (`decodeAny` output: proto field names, enums as names,
 * 64-bit integers as strings, wrappers as `{ value }`, nested Anys as `{ '@type', … }`).
 *
 * Every reader takes the field path it is reading so an invalid resource is rejected with the exact path
 * (`filter_chains[0].filters[0].typed_config.rds.route_config_name: required`); that message is what a NACK carries.
 */
import { TrellisError } from '../errors.js';

/** A decoded protobuf message: plain object keyed by proto field names. */
export type Obj = Readonly<Record<string, unknown>>;

/** Thrown for an invalid Envoy resource; `path` is the field path, `message` is `path: reason`. */
export class EnvoyResourceError extends TrellisError {
  constructor(readonly path: string, readonly reason: string) {
    super('TRELLIS_ERR_INVALID_RESOURCE', `${path}: ${reason}`);
    this.name = 'EnvoyResourceError';
  }
}

export function fail(path: string, reason: string): never {
  throw new EnvoyResourceError(path, reason);
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function obj(o: Obj, key: string, path: string): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) fail(join(path, key), 'must be a message');
  return v;
}

export function reqObj(o: Obj, key: string, path: string): Obj {
  return obj(o, key, path) ?? fail(join(path, key), 'required');
}

export function arr(o: Obj, key: string, path: string): readonly unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(join(path, key), 'must be a list');
  return v;
}

/** Maps a repeated message field, giving each element its indexed path. */
export function list<T>(o: Obj, key: string, path: string, each: (item: Obj, itemPath: string) => T): readonly T[] {
  return Object.freeze(arr(o, key, path).map((item, i) => {
    const p = join(join(path, key), i);
    if (!isObj(item)) fail(p, 'must be a message');
    return each(item, p);
  }));
}

export function str(o: Obj, key: string, path: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') fail(join(path, key), 'must be a string');
  return v;
}

export function reqStr(o: Obj, key: string, path: string): string {
  return str(o, key, path) ?? fail(join(path, key), 'required');
}

export function strs(o: Obj, key: string, path: string): readonly string[] {
  return Object.freeze(arr(o, key, path).map((v, i) => (typeof v === 'string' ? v : fail(join(join(path, key), i), 'must be a string'))));
}

export function num(o: Obj, key: string, path: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) fail(join(path, key), 'must be a number');
  return n;
}

export function bool(o: Obj, key: string): boolean {
  return o[key] === true;
}

/** A `google.protobuf.*Value` wrapper (`{ value }`), or undefined when unset. */
export function wrapped(o: Obj, key: string, path: string): number | undefined {
  const w = obj(o, key, path);
  if (!w) return undefined;
  return num(w, 'value', join(path, key)) ?? 0;
}

export function wrappedBool(o: Obj, key: string, path: string): boolean | undefined {
  const w = obj(o, key, path);
  if (!w) return undefined;
  return w.value === true;
}

/** A `google.protobuf.Duration` in milliseconds, or undefined when unset. */
export function durationMs(o: Obj, key: string, path: string): number | undefined {
  const d = obj(o, key, path);
  if (!d) return undefined;
  const s = num(d, 'seconds', join(path, key)) ?? 0;
  const n = num(d, 'nanos', join(path, key)) ?? 0;
  const ms = s * 1000 + n / 1e6;
  if (ms < 0) fail(join(path, key), 'must not be negative');
  return ms;
}

export function enumOf<T extends string>(o: Obj, key: string, path: string, allowed: readonly T[], dflt: T): T {
  const v = o[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  return fail(join(path, key), `unsupported value ${JSON.stringify(v)} (supported: ${allowed.join(', ')})`);
}

export function port(o: Obj, key: string, path: string): number | undefined {
  const p = num(o, key, path);
  if (p === undefined) return undefined;
  if (!Number.isInteger(p) || p < 0 || p > 65535) fail(join(path, key), 'must be a port 0-65535');
  return p;
}

/** Compiles an RE2 pattern (as Envoy's safe_regex) to a JS RegExp anchored on the whole value. */
export function regex(pattern: string, path: string, flags = ''): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`, flags);
  } catch (cause) {
    return fail(path, `invalid regex: ${(cause as Error).message}`);
  }
}

/** Deep-freezes a freshly built value tree (no cycles). */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !(v instanceof RegExp)) {
    for (const x of Object.values(v)) deepFreeze(x);
    if (!Object.isFrozen(v)) Object.freeze(v);
  }
  return v;
}
