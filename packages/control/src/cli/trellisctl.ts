/** `trellisctl`: one module per subcommand registers itself on the program. */
import { registerAnalyze } from './analyze.js';
import { registerInstallK8s } from './install-k8s.js';
import { createProgram, runProgram } from './program.js';
import { registerProxyConfig } from './proxy-config.js';
import { registerProxyStatus } from './proxy-status.js';
import { registerRegistryStatus } from './registry-status.js';
import { registerVm } from './vm.js';

const program = createProgram();
registerAnalyze(program);
registerProxyStatus(program);
registerProxyConfig(program);
registerRegistryStatus(program);
registerVm(program);
registerInstallK8s(program);
process.exitCode = await runProgram(program, process.argv);
