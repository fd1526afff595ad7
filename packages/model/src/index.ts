export * from './hub.js';
export * from './resource.js';
export * from './registry.js';
export * from './errors.js';
export * from './convert/index.js';
export * from './kinds/index.js';
export * from './decode/index.js';
