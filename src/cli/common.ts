/**
 * Options every command shares (--backend, --threads) and the wrapper that
 * initialises the backend, runs a command and always shuts the backend down.
 */
import type { Argv } from 'yargs';
import { BACKEND_CHOICES, BackendChoice, initBackend, shutdownBackend } from '../backend/backend';

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
