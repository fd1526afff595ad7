export { decodeResource, encodeResource, isForeignResource, type DecodeOptions, type DecodeResult } from './resource.js';
export { formatViolation, type Violation } from './violations.js';
export { formatDurationMs, parseDurationNs } from './syntax.js';
