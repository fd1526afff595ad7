export { analyze, CHECKS } from './analyze.js';
export { CODES, formatFinding, compareFindings, type Finding, type Level, type CodeName } from './findings.js';
export { principalProblem } from './principals.js';
export { fqdn, hostMatches, candidates } from './hosts.js';
