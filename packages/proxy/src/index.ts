export { Proxy, type ProxyOptions } from './proxy.js';
export { nodeIdentity, type NodeIdentity, type NodeOptions } from './xds/node.js';
export { createLogger, silentLogger, type Logger, type LogLevel } from './log.js';
export { ConfigStore } from './config/store.js';
export { selectVirtualHost, selectRoute } from './http/router.js';
export { selectFilterChain } from './net/filter-chain.js';
export { HostSet } from './lb/hosts.js';
export { parseClientHello, detect } from './net/detect.js';
export { requestChannel, tcpChannel, type RequestEvent, type TcpEvent } from './telemetry/events.js';
