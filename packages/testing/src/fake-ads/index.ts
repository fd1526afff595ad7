export { FakeAdsServer, type RecordedRequest } from './server.js';
