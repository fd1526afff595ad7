export * from './fake-consul.js';
export { HttpFake } from './http-fake.js';
export * from './shard-view.js';
