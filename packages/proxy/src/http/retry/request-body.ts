/**
 * A request body that can be sent more than once: it streams to the current attempt as it arrives and keeps a copy
 * (up to `limit` bytes, Envoy's per_connection_buffer_limit_bytes default 1 MiB) so that a retry can replay it,
 * then continue with the rest while the client is still sending. Once the body grows past the limit the copy is
 * dropped and `replayable` turns false: the request streams on but cannot be retried (as in Envoy).
 *
 * One attempt reads at a time: `open()` hands out a new stream and detaches the previous one.
 */
import { Readable } from 'node:stream';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export class RequestBody {
  private chunks: Buffer[] | null = [];
  private size = 0;
  private ended = false;
  private error: Error | null = null;
  private consumer: Readable | null = null;
  private reading = false;
  /** Set while the whole body is being read ahead of the first attempt (`prefetch`). */
  private onComplete: (() => void) | null = null;

  constructor(private readonly src: Readable, private readonly limit = DEFAULT_BODY_LIMIT) {}

  /** Whether every byte received so far is still held (a retry can resend the body). */
  get replayable(): boolean {
    return this.chunks !== null;
  }

  /**
   * Reads the whole body before the first attempt, for a body whose declared length fits the limit: the attempts
   * then send a Buffer (cheaper than a stream). Not for bodies of unknown length (a gRPC stream may wait for the
   * response before it ends). `ready` runs when the body has ended (not on error: the downstream is gone then).
   */
  prefetch(ready: () => void): void {
    this.onComplete = ready;
    this.listen();
  }

  /** The body for a new attempt: a Buffer when it is complete and held, else a stream (held bytes, then live ones). */
  open(): Buffer | Readable {
    if (this.ended && this.chunks) {
      if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
      return this.chunks[0];
    }
    const r: Readable = new Readable({ read: () => { if (this.consumer === r) this.src.resume(); } });
    this.consumer = r;
    r.once('close', () => { if (this.consumer === r) this.consumer = null; });
    for (const c of this.chunks ?? []) r.push(c);
    if (this.error) r.destroy(this.error);
    else if (this.ended) r.push(null);
    if (this.reading) this.src.resume();
    else this.listen();
    return r;
  }

  private listen(): void {
    this.reading = true;
    this.src.on('data', (c: Buffer) => this.onData(c));
    this.src.once('end', () => {
      this.ended = true;
      this.consumer?.push(null);
      const done = this.onComplete;
      this.onComplete = null;
      done?.();
    });
    this.src.once('error', (e: Error) => { this.error = e; this.consumer?.destroy(e); });
    this.src.once('aborted', () => { this.error ??= new Error('request aborted'); this.consumer?.destroy(this.error); });
  }

  private onData(c: Buffer): void {
    if (this.chunks) {
      this.size += c.length;
      if (this.size > this.limit) this.chunks = null;
      else this.chunks.push(c);
    }
    const r = this.consumer;
    if (r) { if (!r.push(c)) this.src.pause(); }
    else if (this.onComplete === null) this.src.pause();
  }

  /** No further attempt will be made: stop keeping the copy (a long gRPC stream must not hold 1 MiB for nothing). */
  dropCopy(): void {
    this.chunks = null;
  }

  /** Between attempts: stop reading (the client waits, the copy stays as it is) until the next `open()`. */
  detach(): void {
    this.consumer = null;
    if (!this.ended && this.reading) this.src.pause();
  }
}
