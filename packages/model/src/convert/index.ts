export * from './service-entry.js';
