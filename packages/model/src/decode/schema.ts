/**
 * A tiny schema/combinator layer: each `Schema<T>` decodes an untyped value into a normalized `T` (recording
 * violations with their paths) and encodes a `T` back into Istio's JSON shape. `decode(encode(x))` equals `x`
 * for every schema, which is what makes resource round trips idempotent.
 *
 * Decoders never throw. When a value cannot be decoded they record a violation and return `INVALID`, which lets
 * enclosing objects skip cross-field checks that would only repeat the problem.
 */
import { Ctx, joinIndex, joinKey, nearest, unknownFieldMessage } from './violations.js';
import { checkLabelKey, checkLabelValue, formatDurationMs, parseDurationNs } from './syntax.js';

export const INVALID: unique symbol = Symbol('invalid');
export type Decoded<T> = T | typeof INVALID;

export interface Schema<T> {
  decode(input: unknown, path: string, cx: Ctx): Decoded<T>;
  encode(value: T): unknown;
}

/** A check on an already-typed value; returns a message, or undefined when valid. */
export type Check<T> = (value: T) => string | undefined;

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return 'a string';
    case 'number':
      return `a number (${v})`;
    case 'boolean':
      return `a boolean (${v})`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function typeError(cx: Ctx, path: string, expected: string, got: unknown): typeof INVALID {
  cx.add(path, `expected ${expected}, got ${typeName(got)}`);
  return INVALID;
}

export function str(...checks: Check<string>[]): Schema<string> {
  return {
    decode(input, path, cx) {
      if (typeof input !== 'string') return typeError(cx, path, 'a string', input);
      let ok = true;
      for (const c of checks) {
        const m = c(input);
        if (m !== undefined) {
          cx.add(path, m);
          ok = false;
        }
      }
      return ok ? input : INVALID;
    },
    encode: (v) => v,
  };
}

export const nonEmpty: Check<string> = (s) => (s === '' ? 'must not be empty' : undefined);

export function bool(): Schema<boolean> {
  return {
    decode: (input, path, cx) => (typeof input === 'boolean' ? input : typeError(cx, path, 'a boolean', input)),
    encode: (v) => v,
  };
}

export interface NumberRange {
  readonly min?: number;
  readonly max?: number;
}

function rangeMessage(v: number, r: NumberRange): string | undefined {
  if (r.min !== undefined && r.max !== undefined && (v < r.min || v > r.max)) return `must be between ${r.min} and ${r.max}, got ${v}`;
  if (r.min !== undefined && v < r.min) return `must be at least ${r.min}, got ${v}`;
  if (r.max !== undefined && v > r.max) return `must be at most ${r.max}, got ${v}`;
  return undefined;
}

/** An integer; by default non-negative (protobuf uint32). */
export function int(range: NumberRange = { min: 0 }): Schema<number> {
  return {
    decode(input, path, cx) {
      if (typeof input !== 'number' || !Number.isInteger(input)) return typeError(cx, path, 'an integer', input);
      const m = rangeMessage(input, range);
      if (m !== undefined) {
        cx.add(path, m);
        return INVALID;
      }
      return input;
    },
    encode: (v) => v,
  };
}

export function num(range: NumberRange = {}): Schema<number> {
  return {
    decode(input, path, cx) {
      if (typeof input !== 'number' || !Number.isFinite(input)) return typeError(cx, path, 'a number', input);
      const m = rangeMessage(input, range);
      if (m !== undefined) {
        cx.add(path, m);
        return INVALID;
      }
      return input;
    },
    encode: (v) => v,
  };
}

export const port = (): Schema<number> => int({ min: 1, max: 65535 });

/**
 * One of a fixed set of strings. `aliases` maps accepted spellings (after upper-casing when `caseInsensitive`)
 * onto the canonical value; the canonical value is what decoding yields and encoding writes.
 */
export function enumOf<E extends string>(
  values: readonly E[],
  opts: { caseInsensitive?: boolean; aliases?: Readonly<Record<string, E>>; what?: string } = {},
): Schema<E> {
  const what = opts.what ?? 'value';
  return {
    decode(input, path, cx) {
      if (typeof input !== 'string') return typeError(cx, path, 'a string', input);
      const key = opts.caseInsensitive ? input.toUpperCase() : input;
      const hit = (values as readonly string[]).includes(key) ? (key as E) : opts.aliases?.[key];
      if (hit !== undefined) return hit;
      const near = nearest(input, values);
      const hint = near === undefined ? '' : `; did you mean \`${near}\`?`;
      cx.add(path, `unknown ${what} \`${input}\`; expected one of ${values.join(', ')}${hint}`);
      return INVALID;
    },
    encode: (v) => v,
  };
}

/**
 * A duration string (`1.5s`, `500ms`, `1m`, `1h`), decoded to **milliseconds** (fractional below 1 ms) and encoded
 * back to the shortest exact string. `min` is in milliseconds; Istio requires at least 1 ms for most durations.
 */
export function duration(opts: { min?: number } = {}): Schema<number> {
  return {
    decode(input, path, cx) {
      if (typeof input !== 'string') {
        const hint = typeof input === 'number' ? `; write it with a unit, like \`${input}s\` or \`${input}ms\`` : '';
        cx.add(path, `expected a duration string like 1.5s, 500ms or 1m, got ${typeName(input)}${hint}`);
        return INVALID;
      }
      const ns = parseDurationNs(input);
      if (typeof ns === 'string') {
        cx.add(path, ns);
        return INVALID;
      }
      const ms = ns / 1e6;
      if (opts.min !== undefined && ms < opts.min) {
        cx.add(path, `duration must be at least ${formatDurationMs(opts.min)}, got \`${input}\``);
        return INVALID;
      }
      return ms;
    },
    encode: (v) => formatDurationMs(v),
  };
}

/**
 * A percentage 0–100 (fractions allowed). Accepts both `50` and Istio's `Percent` message `{value: 50}`;
 * decodes to the number and encodes to `{value: N}` (the proto shape).
 */
export function percent(opts: { encodeAsNumber?: boolean } = {}): Schema<number> {
  return {
    decode(input, path, cx) {
      let v: unknown = input;
      let p = path;
      if (isPlainObject(input)) {
        const keys = Object.keys(input);
        for (const k of keys) if (k !== 'value') cx.add(joinKey(path, k), unknownFieldMessage(k, ['value']));
        if (keys.some((k) => k !== 'value')) return INVALID;
        v = input.value ?? 0;
        p = joinKey(path, 'value');
      }
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        return typeError(cx, p, 'a percentage (a number 0-100, or {value: N})', v);
      }
      if (v < 0 || v > 100) {
        cx.add(p, `percentage must be between 0 and 100, got ${v}`);
        return INVALID;
      }
      return v;
    },
    encode: (v) => (opts.encodeAsNumber ? v : { value: v }),
  };
}

export interface ArrayOpts<T> {
  /** Minimum number of items; `1` gives "must not be empty". */
  readonly min?: number;
  /** Items whose key repeats are reported as duplicates. */
  readonly uniqueBy?: (item: T) => string | undefined;
  readonly uniqueWhat?: string;
}

export function arrayOf<T>(item: Schema<T>, opts: ArrayOpts<T> = {}): Schema<readonly T[]> {
  return {
    decode(input, path, cx) {
      if (!Array.isArray(input)) return typeError(cx, path, 'a list', input);
      if (opts.min !== undefined && input.length < opts.min) {
        cx.add(path, opts.min === 1 ? 'must not be empty' : `must have at least ${opts.min} items`);
        return INVALID;
      }
      const out: T[] = [];
      let failed = false;
      const seen = new Map<string, number>();
      input.forEach((raw, i) => {
        const p = joinIndex(path, i);
        if (raw === null || raw === undefined) {
          cx.add(p, 'must not be null');
          failed = true;
          return;
        }
        const v = item.decode(raw, p, cx);
        if (v === INVALID) {
          failed = true;
          return;
        }
        out.push(v);
        const key = opts.uniqueBy?.(v);
        if (key !== undefined) {
          const first = seen.get(key);
          if (first !== undefined) {
            cx.add(p, `duplicate ${opts.uniqueWhat ?? 'item'} \`${key}\` (first defined at ${joinIndex(path, first)})`);
            failed = true;
          } else seen.set(key, i);
        }
      });
      return failed ? INVALID : out;
    },
    encode: (v) => v.map((x) => item.encode(x)),
  };
}

/** A list of strings, each checked. */
export function strings(...checks: Check<string>[]): Schema<readonly string[]> {
  return arrayOf(str(...checks));
}

/** Sets an own enumerable property, even for keys such as `__proto__` that plain assignment would not create. */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export function mapOf<V>(value: Schema<V>, keyCheck?: Check<string>): Schema<Readonly<Record<string, V>>> {
  return {
    decode(input, path, cx) {
      if (!isPlainObject(input)) return typeError(cx, path, 'a map', input);
      const out: Record<string, V> = {};
      let failed = false;
      for (const [k, raw] of Object.entries(input)) {
        const p = joinKey(path, k);
        const km = keyCheck?.(k);
        if (km !== undefined) {
          cx.add(p, km);
          failed = true;
        }
        if (raw === null || raw === undefined) {
          cx.add(p, 'must not be null');
          failed = true;
          continue;
        }
        const v = value.decode(raw, p, cx);
        if (v === INVALID) failed = true;
        else setOwn(out, k, v);
      }
      return failed ? INVALID : out;
    },
    encode(v) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) setOwn(out, k, value.encode(x));
      return out;
    },
  };
}

/** Kubernetes labels (keys and values checked), also the shape of every Istio label selector. */
export function labels(): Schema<Readonly<Record<string, string>>> {
  return mapOf(str(checkLabelValue), checkLabelKey);
}

/** A map of free-form strings (annotations, headers to set). */
export function stringMap(keyCheck?: Check<string>): Schema<Readonly<Record<string, string>>> {
  return mapOf(str(), keyCheck);
}

export interface FieldOpts<V> {
  readonly required?: boolean;
  /** Filled in when the field is absent; documented on the field's type. */
  readonly default?: V;
}

export type Field<V> = Schema<V> | (FieldOpts<V> & { readonly schema: Schema<V> });
export type Fields<T> = { readonly [K in keyof T]-?: Field<Exclude<T[K], undefined>> };

export function required<V>(schema: Schema<V>): Field<V> {
  return { schema, required: true };
}

export function withDefault<V>(schema: Schema<V>, value: V): Field<V> {
  return { schema, default: value };
}

export interface ObjectOpts<T> {
  /** Groups of fields of which at most one may be set (protobuf `oneof`). */
  readonly oneOf?: readonly (readonly (keyof T & string)[])[];
  /** Groups of fields of which exactly one must be set. */
  readonly exactlyOne?: readonly (readonly (keyof T & string)[])[];
  /** Cross-field rules, run when every field decoded. Report with `cx.add(path-or-subpath, message)`. */
  readonly check?: (value: T, path: string, cx: Ctx) => void;
  /** Normalization after decoding (e.g. deriving a port's protocol from its name). */
  readonly normalize?: (value: T) => T;
}

function fieldParts<V>(f: Field<V>): { schema: Schema<V>; required: boolean; def: V | undefined } {
  if ('schema' in f) return { schema: f.schema, required: f.required === true, def: f.default };
  return { schema: f, required: false, def: undefined };
}

function ticks(keys: readonly string[]): string {
  return keys.map((k) => `\`${k}\``).join(', ');
}

/** An object with known keys; unknown keys are violations with the nearest known name. `null` reads as absent. */
export function obj<T extends object>(fields: Fields<T>, opts: ObjectOpts<T> = {}): Schema<T> {
  const entries = Object.entries(fields) as [string, Field<unknown>][];
  const known = entries.map(([k]) => k);
  return {
    decode(input, path, cx) {
      if (!isPlainObject(input)) return typeError(cx, path, 'an object', input);
      const out: Record<string, unknown> = {};
      let failed = false;
      for (const key of Object.keys(input)) {
        if (!Object.prototype.hasOwnProperty.call(fields, key)) {
          cx.add(joinKey(path, key), unknownFieldMessage(key, known));
          failed = true;
        }
      }
      for (const [key, f] of entries) {
        const { schema, required: req, def } = fieldParts(f);
        const raw = input[key];
        const p = joinKey(path, key);
        if (raw === undefined || raw === null) {
          if (req) {
            cx.add(p, 'required field is missing');
            failed = true;
          } else if (def !== undefined) out[key] = def;
          continue;
        }
        const v = schema.decode(raw, p, cx);
        if (v === INVALID) failed = true;
        else out[key] = v;
      }
      const present = (k: string): boolean => input[k] !== undefined && input[k] !== null;
      for (const group of opts.oneOf ?? []) {
        const set = group.filter(present);
        if (set.length > 1) {
          cx.add(path, `only one of ${ticks(group)} may be set, got ${ticks(set)}`);
          failed = true;
        }
      }
      for (const group of opts.exactlyOne ?? []) {
        const set = group.filter(present);
        if (set.length !== 1) {
          cx.add(path, set.length === 0 ? `one of ${ticks(group)} is required` : `only one of ${ticks(group)} may be set, got ${ticks(set)}`);
          failed = true;
        }
      }
      if (failed) return INVALID;
      const before = cx.violations.length;
      opts.check?.(out as T, path, cx);
      if (cx.violations.length > before) return INVALID;
      return opts.normalize ? opts.normalize(out as T) : (out as T);
    },
    encode(value) {
      const out: Record<string, unknown> = {};
      const rec = value as Record<string, unknown>;
      for (const [key, f] of entries) {
        const v = rec[key];
        if (v !== undefined) out[key] = fieldParts(f).schema.encode(v);
      }
      return out;
    },
  };
}

/** Adds a check to any schema; the value is kept (the violation already fails the document). */
export function refine<T>(schema: Schema<T>, check: (value: T, path: string, cx: Ctx) => void): Schema<T> {
  return {
    decode(input, path, cx) {
      const v = schema.decode(input, path, cx);
      if (v === INVALID) return v;
      const before = cx.violations.length;
      check(v, path, cx);
      return cx.violations.length > before ? INVALID : v;
    },
    encode: (v) => schema.encode(v),
  };
}

/** For recursive shapes. */
export function lazy<T>(get: () => Schema<T>): Schema<T> {
  return { decode: (i, p, cx) => get().decode(i, p, cx), encode: (v) => get().encode(v) };
}

/** Recursively freezes a freshly decoded value (plain objects and arrays only). */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}
