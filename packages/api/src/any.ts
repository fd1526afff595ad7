/**
 * `google.protobuf.Any` and `Struct` conversions between plain objects (proto field names, snake_case) and bytes.
 *
 * Objects handed to `encodeAny` use proto field names; nested `Any` fields are written
 * `{ '@type': 'type.googleapis.com/…', ...fields }` and `Duration` as `{ seconds, nanos }`.
 * `decodeAny` returns the same shape (nested Anys expanded to `@type` objects, enums as names, 64-bit ints as
 * strings, bytes as base64 strings).
 */
import type protobuf from 'protobufjs';
import { TrellisError } from './errors.js';
import { loadProtos } from './protos.js';

export interface AnyMessage {
  readonly type_url: string;
  readonly value: Uint8Array;
}

const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, bytes: String, defaults: false, oneofs: false, json: true };

function messageType(typeUrl: string): protobuf.Type {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  try {
    return loadProtos().root.lookupType(name);
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_UNKNOWN_TYPE', `unknown protobuf type ${typeUrl}`, { cause });
  }
}

/** Encodes a plain object as the message named by `typeUrl`. Throws TRELLIS_ERR_ENCODE naming the field on a bad shape. */
export function encodeMessage(typeUrl: string, object: Record<string, unknown>): Uint8Array {
  const type = messageType(typeUrl);
  try {
    return type.encode(type.fromObject(object)).finish();
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_ENCODE', `cannot encode ${typeUrl}: ${(cause as Error).message}`, { cause });
  }
}

/** Wraps a plain object in an Any of the given type. */
export function encodeAny(typeUrl: string, object: Record<string, unknown>): AnyMessage {
  return { type_url: typeUrl, value: encodeMessage(typeUrl, object) };
}

/** Decodes bytes of the named type into a plain object. Throws TRELLIS_ERR_DECODE on malformed bytes. */
export function decodeMessage(typeUrl: string, bytes: Uint8Array): Record<string, unknown> {
  const type = messageType(typeUrl);
  try {
    return type.toObject(type.decode(bytes), TO_OBJECT) as Record<string, unknown>;
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_DECODE', `cannot decode ${typeUrl}: ${(cause as Error).message}`, { cause });
  }
}

/** Decodes an Any (as received from gRPC: `{type_url, value}`) into a plain object. */
export function decodeAny(any: { type_url: string; value: Uint8Array }): Record<string, unknown> {
  return decodeMessage(any.type_url, any.value);
}

/**
 * A `google.protobuf.Value` as protobufjs and proto-loader hold it. protobufjs substitutes its bundled struct.proto
 * for google/protobuf/struct.proto, and that one names Value's fields in camelCase (`stringValue`) even under
 * keepCase, so these are the names that encode; snake_case ones would be dropped without a word.
 */
export type StructValue =
  | { nullValue: 'NULL_VALUE' }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: StructObject }
  | { listValue: { values: StructValue[] } };
export interface StructObject {
  fields: Record<string, StructValue>;
}

/** JSON → `google.protobuf.Struct` (node metadata, CSR metadata, endpoint and transport-socket-match metadata). */
export function toStruct(json: Readonly<Record<string, unknown>>): StructObject {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(json)) if (v !== undefined) fields[k] = toValue(v);
  return { fields };
}

function toValue(v: unknown): StructValue {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  if (typeof v === 'object') return { structValue: toStruct(v as Record<string, unknown>) };
  return { stringValue: String(v) };
}

/**
 * `google.protobuf.Struct` → JSON. Accepts what gRPC and `decodeAny` produce (camelCase fields, possibly with the
 * `kind` oneof key) and the snake_case spelling of proto JSON.
 */
export function fromStruct(struct: { fields?: Record<string, unknown> } | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) out[k] = fromValue(v as Record<string, unknown>);
  return out;
}

const VALUE_KINDS = ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'] as const;
const snake = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function fromValue(v: Record<string, unknown>): unknown {
  const kind = typeof v.kind === 'string' && v.kind in v
    ? v.kind
    : VALUE_KINDS.flatMap((k) => [k, snake(k)]).find((k) => v[k] !== undefined && v[k] !== null);
  if (!kind) return null;
  const value = v[kind];
  switch (kind.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())) {
    case 'numberValue': return Number(value);
    case 'stringValue': return value;
    case 'boolValue': return value;
    case 'structValue': return fromStruct(value as { fields?: Record<string, unknown> });
    case 'listValue': return ((value as { values?: Record<string, unknown>[] }).values ?? []).map(fromValue);
    default: return null;
  }
}
