/** What the agent's parts report, for metrics, logs and readiness. Every callback is optional. */
import type { Identity } from './identity.js';

export interface AgentObserver {
  /** A certificate was obtained (`reason` says how: first issue with a token, loaded from disk, or renewal). */
  identity?(identity: Identity, reason: 'token' | 'persisted' | 'renewal'): void;
  /** A CSR failed (the CA refused it or could not be reached). */
  caError?(error: Error): void;
  /** The number of connected SDS streams changed. */
  sdsClients?(count: number): void;
}

/** Calls every observer; one that throws does not stop the others. */
export function combineObservers(...observers: AgentObserver[]): AgentObserver {
  const each = <K extends keyof AgentObserver>(key: K, args: Parameters<NonNullable<AgentObserver[K]>>): void => {
    for (const o of observers) {
      try {
        (o[key] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch {
        // an observer's failure is its own; it must not break issuance or serving
      }
    }
  };
  return {
    identity: (...a) => each('identity', a),
    caError: (...a) => each('caError', a),
    sdsClients: (...a) => each('sdsClients', a),
  };
}

/** Structured logger passed into every part (main writes JSON lines to stderr). */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = Object.freeze({ info() {}, warn() {}, error() {} });
