import { createRequire } from 'node:module';

/** The destination a redirected connection was originally addressed to. */
export interface OriginalDst {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

interface Binding {
  getOriginalDst(fd: number): OriginalDst | null;
  sdNotify(state: string): boolean;
}

const require = createRequire(import.meta.url);
const binding = require('../build/Release/trellis_native.node') as Binding;

/**
 * Reads SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6) from a connected socket's file descriptor.
 * Returns null when the connection was not redirected by iptables (no conntrack entry).
 * Throws an Error with code TRELLIS_ERR_NATIVE on any other failure (bad fd, not a socket).
 */
export function getOriginalDst(fd: number): OriginalDst | null {
  return binding.getOriginalDst(fd);
}

/**
 * Sends a state line to systemd (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`) through $NOTIFY_SOCKET.
 * Returns false, doing nothing, when NOTIFY_SOCKET is unset; true when the datagram was sent.
 */
export function sdNotify(state: string): boolean {
  return binding.sdNotify(state);
}

/** The file descriptor behind a net.Socket, or -1 when the handle exposes none (e.g. not yet connected). */
export function socketFd(socket: { _handle?: { fd?: number } | null }): number {
  const fd = socket._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}
export { SystemdNotifier, watchdogIntervalMs, type SystemdNotifierOptions } from './systemd.js';
