/**
 * Opening an API client for a shard's list-watch loops, shared by the Kubernetes registry and the Istio CRD source.
 */
import { setMaxListeners } from 'node:events';
import { childSignal } from '../runtime.js';
import type { ShardPublisher } from '../shard-publisher.js';
import { KubeHttpClient, inClusterConnection, loadKubeconfig, type KubeConnection } from './client.js';

/** How to reach the API server: an explicit connection, a kubeconfig file (and context), or the in-cluster account. */
export interface KubeConnectionOptions {
  readonly connection?: KubeConnection;
  readonly kubeconfig?: string;
  readonly context?: string;
}

/**
 * Opens a client, or publishes the failure to load credentials and returns null. The returned signal aborts with
 * `signal` and closes the client then; every list-watch loop listens on it (more listeners than Node's warning limit).
 */
export function openWatchClient(
  o: KubeConnectionOptions,
  publisher: ShardPublisher,
  signal: AbortSignal,
): { client: KubeHttpClient; signal: AbortSignal } | null {
  let client: KubeHttpClient;
  try {
    client = new KubeHttpClient(o.connection ?? (o.kubeconfig ? loadKubeconfig(o.kubeconfig, o.context) : inClusterConnection()));
  } catch (err) {
    publisher.fail(err);
    return null;
  }
  const root = childSignal(signal);
  setMaxListeners(0, root.signal);
  root.signal.addEventListener('abort', () => {
    client.close();
    root.dispose();
  }, { once: true });
  return { client, signal: root.signal };
}
