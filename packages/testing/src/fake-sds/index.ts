export { FakeSdsServer, type SdsRequestRecord } from './server.js';
export { makeTestCa, issueTestCert, type TestCa, type TestCert } from './certs.js';
