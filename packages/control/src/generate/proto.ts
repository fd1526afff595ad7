/**
 * Small builders for protobuf well-known shapes in the object form `encodeAny` takes (proto field names):
 * `Duration` as `{seconds, nanos}`, wrapper types as `{value}`, `Percent`, `FractionalPercent`, `Struct`.
 */

export interface DurationObject {
  readonly seconds: number;
  readonly nanos: number;
}

/** Milliseconds (possibly fractional) → `google.protobuf.Duration`. */
export function duration(ms: number): DurationObject {
  const totalNanos = Math.round(ms * 1e6);
  const seconds = Math.floor(totalNanos / 1e9);
  return { seconds, nanos: totalNanos - seconds * 1e9 };
}

export function u32(value: number): { value: number } {
  return { value };
}

export function boolValue(value: boolean): { value: boolean } {
  return { value };
}

/**
 * A 0–100 percentage as Envoy's `FractionalPercent` with denominator MILLION, as Istio writes fault and mirror
 * percentages (keeps up to four decimals of the percentage exact).
 */
export function fractionalPercent(percent: number): { numerator: number; denominator: 'MILLION' } {
  return { numerator: Math.round(percent * 10_000), denominator: 'MILLION' };
}


/** `envoy.config.core.v3.ConfigSource` that points at the ADS stream the proxy already has. */
export function adsConfigSource(): Record<string, unknown> {
  return { ads: {}, resource_api_version: 'V3' };
}

/** A `socket_address` Address. */
export function socketAddress(address: string, port: number): Record<string, unknown> {
  return { socket_address: { address, port_value: port } };
}
