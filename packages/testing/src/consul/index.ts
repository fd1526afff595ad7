export * from './fake-consul.js';
export { HttpFake, sendJson, delay } from './http-fake.js';
export * from './shard-view.js';
