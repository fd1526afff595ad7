export * from './fake-eureka.js';
