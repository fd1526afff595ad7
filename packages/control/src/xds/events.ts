/**
 * `node:diagnostics_channel` channels the ADS server publishes on (hot path: it never logs). Metrics and logs
 * subscribe. Payload shapes are part of the contract.
 */
import diagnostics_channel from 'node:diagnostics_channel';

export interface PushEvent { readonly proxy: string; readonly type: string; readonly version: string; readonly resources: number; readonly ms: number }
export interface NackEvent { readonly proxy: string; readonly type: string; readonly version: string; readonly message: string }
export interface ConnectionEvent { readonly proxy: string; readonly connection: string; readonly connected: boolean }

export const XDS_CHANNELS = Object.freeze({
  push: diagnostics_channel.channel('trellis.control.xds.push'),
  nack: diagnostics_channel.channel('trellis.control.xds.nack'),
  connection: diagnostics_channel.channel('trellis.control.xds.connection'),
});
