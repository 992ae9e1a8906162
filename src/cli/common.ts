/**
 * Options every command shares (--backend, --threads) and the wrapper that
 * initialises the backend, runs a command and always shuts the backend down.
 */
import type { Argv } from 'yargs';
import { BACKEND_CHOICES, BackendChoice, initBackend, shutdownBackend } from '../backend/backend';
import type { RunOptions } from '../train/loop';

export interface BackendArgs {
  backend: string;
  threads: number;
}

export function withBackendOptions<T>(y: Argv<T>): Argv<T & BackendArgs> {
  return y
    .option('backend', {
      type: 'string',
      choices: BACKEND_CHOICES as unknown as string[],
      default: 'auto',
      describe: 'TF.js backend: auto = tfjs-node-gpu, then tfjs-node, then the embedded wasm',
    })
    .option('threads', {
      type: 'number',
      default: 1,
      describe: 'wasm backend threads (>1 starts the multi-threaded wasm build)',
    }) as Argv<T & BackendArgs>;
}

/** Initialises the backend (one log line on stderr), runs `fn`, and always releases the backend. */
export async function runWithBackend(args: BackendArgs, fn: () => Promise<void>): Promise<void> {
  await initBackend(args.backend as BackendChoice, { threads: args.threads, onLog: (l) => process.stderr.write(l + '\n') });
  try {
    await fn();
  } finally {
    shutdownBackend();
  }
}

/** The command line as typed, for checkpoint metadata. */
export function commandLine(): string {
  return ['tfjs-diffusion', ...process.argv.slice(2)].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Parses "1,2,2" into numbers; an error names the option. */
export function parseIntList(option: string, value: string): number[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const nums = parts.map(Number);
  if (parts.length === 0 || nums.some((n) => !Number.isInteger(n))) throw new Error(`--${option} must be a comma-separated list of integers, got '${value}'`);
  return nums;
}

/**
 * An AbortSignal that Ctrl-C (SIGINT) and SIGTERM abort: a training run finishes its
 * step, writes a checkpoint and stops (train/loop.ts). The handlers remove themselves
 * on the first signal, so a second Ctrl-C ends the process at once. Call release()
 * when the work is done.
 */
export function stopOnSignals(): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const release = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  const onSignal = (name: NodeJS.Signals): void => {
    process.stderr.write(`\n${name === 'SIGTERM' ? 'SIGTERM' : 'interrupt'}: finishing this step and writing a checkpoint (Ctrl-C again to abort)\n`);
    controller.abort();
    release();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { signal: controller.signal, release };
}

/** A log line (or a progress text: '\r'-led or already ended) to stderr. */
export function logToStderr(line: string): void {
  process.stderr.write(line.endsWith('\n') || line.startsWith('\r') ? line : line + '\n');
}

/** The flags every training command shares about its run folder. */
export interface RunFolderArgs {
  resume: boolean;
  overwrite: boolean;
  'dry-run': boolean;
}

/** The run options of a training command (train/loop.ts RunOptions): its folder flags, a stop signal, the command line, logging to stderr. */
export function cliRunOptions(args: RunFolderArgs, signal: AbortSignal): RunOptions {
  return { resume: args.resume, overwrite: args.overwrite, dryRun: args['dry-run'], signal, command: commandLine(), isTTY: process.stderr.isTTY === true, onLog: logToStderr };
}
