/**
 * The shape every `trellisctl` subcommand shares: a commander program whose parse errors exit 2, and a
 * `UsageError` subcommands throw for bad arguments commander cannot see (a path that does not exist).
 * Exit codes: 0 success, 1 the command ran and found errors, 2 usage errors.
 */
import { Command, CommanderError } from 'commander';

export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_USAGE = 2;

/** A bad invocation: printed as `trellisctl: <message>`, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function createProgram(): Command {
  return new Command('trellisctl')
    .description('Operate and inspect a Trellis mesh.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
}

/** Parses `argv` (as `process.argv`) and runs the chosen subcommand; resolves to the exit status. */
export async function runProgram(program: Command, argv: readonly string[]): Promise<number> {
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`trellisctl: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
}
