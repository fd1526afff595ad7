export * from './options.js';
export * from './rules.js';
export * from './apply.js';
