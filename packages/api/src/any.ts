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

/** A `google.protobuf.Value` in proto-loader's object form. */
export type StructValue =
  | { null_value: 'NULL_VALUE' }
  | { number_value: number }
  | { string_value: string }
  | { bool_value: boolean }
  | { struct_value: StructObject }
  | { list_value: { values: StructValue[] } };
export interface StructObject {
  fields: Record<string, StructValue>;
}

/** JSON → `google.protobuf.Struct` in proto-loader's object form (for node metadata and CSR metadata). */
export function toStruct(json: Record<string, unknown>): StructObject {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(json)) if (v !== undefined) fields[k] = toValue(v);
  return { fields };
}

function toValue(v: unknown): StructValue {
  if (v === null) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(toValue) } };
  if (typeof v === 'object') return { struct_value: toStruct(v as Record<string, unknown>) };
  return { string_value: String(v) };
}

/** `google.protobuf.Struct` (proto-loader object form, possibly with `kind` oneof keys) → JSON. */
export function fromStruct(struct: { fields?: Record<string, unknown> } | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) out[k] = fromValue(v as Record<string, unknown>);
  return out;
}

function fromValue(v: Record<string, unknown>): unknown {
  const kind = (v.kind as string | undefined) ?? Object.keys(v).find((k) => k.endsWith('_value') && v[k] != null);
  switch (kind) {
    case 'null_value': return null;
    case 'number_value': return Number(v.number_value);
    case 'string_value': return v.string_value;
    case 'bool_value': return v.bool_value;
    case 'struct_value': return fromStruct(v.struct_value as { fields?: Record<string, unknown> });
    case 'list_value': return ((v.list_value as { values?: Record<string, unknown>[] }).values ?? []).map(fromValue);
    default: return null;
  }
}
