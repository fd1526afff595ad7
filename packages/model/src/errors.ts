/** An error with a stable code (`TRELLIS_ERR_*`); callers check `code`, never the message. */
export class TrellisError extends Error {
  constructor(readonly code: `TRELLIS_ERR_${string}`, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrellisError';
  }
}
