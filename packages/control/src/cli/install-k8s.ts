/**
 * `trellisctl install k8s [--values FILE]… [--name NAME] [--namespace NS] [--chart DIR]`: prints the manifests of
 * the Trellis Helm chart (deploy/k8s/trellis) for clusters installed without Helm:
 *
 *   trellisctl install k8s --values my-values.yaml | kubectl apply --server-side -f -
 *
 * The output is what `helm template NAME deploy/k8s/trellis -n NS -f FILE --include-crds` prints (CRDs first).
 * Exit status: 0 printed, 1 a values or template error (one line `TRELLIS_ERR_…: message`).
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { TrellisError } from '@trellis/model';
import { renderChart } from '../install/render-chart.js';
import { ownTree } from './vm-install.js';

/** The chart shipped with this Trellis tree. */
export function defaultChartDir(): string {
  return join(ownTree(), 'deploy', 'k8s', 'trellis');
}

export function registerInstallK8s(program: Command): void {
  let install = program.commands.find((c) => c.name() === 'install');
  if (!install) install = program.command('install').description('print or apply installation manifests');
  install
    .command('k8s')
    .description('print the Kubernetes manifests of the Trellis Helm chart (CRDs first), for installs without Helm')
    .option('--values <file>', 'a values file (repeatable; later files win)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--name <name>', 'release name (prefix of object names)', 'trellis')
    .option('--namespace <ns>', 'namespace of the namespaced objects', 'trellis-system')
    .option('--chart <dir>', 'chart directory', defaultChartDir())
    .action((opts: { values: string[]; name: string; namespace: string; chart: string }) => {
      try {
        process.stdout.write(renderChart({ chartDir: opts.chart, valuesFiles: opts.values, releaseName: opts.name, namespace: opts.namespace }));
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
        process.stderr.write(`${err.code}: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
