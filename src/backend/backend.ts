/**
 * Backend selection. One call picks and initialises the TF.js backend:
 *
 *   auto            tfjs-node-gpu if it loads, then tfjs-node, then wasm
 *   tensorflow-gpu  @tensorflow/tfjs-node-gpu (CUDA), optional peer dependency
 *   tensorflow      @tensorflow/tfjs-node (native CPU), optional peer dependency
 *   wasm            @tensorflow/tfjs-backend-wasm (SIMD), the embedded default
 *   cpu             pure-JS reference backend (~40x slower; for gradient checks)
 *
 * `auto` never fails because an optional package is missing; asking for one
 * explicitly that is not installed is an error that says how to install it.
 *
 * wasm threads: `threads: 1` (default) is the single-thread SIMD build;
 * `threads > 1` starts the package's multi-threaded SIMD build (./wasmThreads.ts),
 * which keeps the process alive until `shutdownBackend()` is called.
 */
import * as tf from '@tensorflow/tfjs';
import { initThreadedWasm, shutdownThreadedWasm, threadedWasmInfo, validateThreads } from './wasmThreads';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The resolved choice (never 'auto'). */
  readonly choice: Exclude<BackendChoice, 'auto'>;
  /** tf.getBackend() after initialisation: 'tensorflow' | 'wasm' | 'cpu'. */
  readonly tfBackend: string;
  /** Why this backend was chosen, for the one log line. */
  readonly reason: string;
  /** XNNPACK threads of the wasm backend; null for cpu and tfjs-node (which manages its own threads). */
  readonly threads: number | null;
}

export interface InitBackendOptions {
  /** Receives the one line naming the backend and why. Default: no output. */
  readonly onLog?: (line: string) => void;
  /**
   * Threads for the wasm backend (explicit or picked by auto). Default 1: the
   * single-thread SIMD build. > 1: the threaded SIMD build; must be <= os.cpus().length;
   * call shutdownBackend() before the process should exit. An error with an explicit
   * cpu / tensorflow / tensorflow-gpu choice; ignored (and logged) when auto picks tfjs-node.
   */
  readonly threads?: number;
}

const NODE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;

/** Loads an optional tfjs-node package. Returns null when it is not installed, throws when it is but fails. */
function tryRequireNode(pkg: string): { loaded: true } | { loaded: false; why: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    require(pkg);
    return { loaded: true };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(pkg)) {
      return { loaded: false, why: `${pkg} is not installed` };
    }
    return { loaded: false, why: `${pkg} is installed but failed to load: ${String(err.message).split('\n')[0]}` };
  }
}

function isBackendChoice(name: string): name is BackendChoice {
  return (BACKEND_CHOICES as readonly string[]).includes(name);
}

async function activate(name: string): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`backend '${name}' is registered but failed to initialise (tf.setBackend returned false)`);
  await tf.ready();
}

/** Returns the XNNPACK thread count in use. */
async function initWasm(threads: number): Promise<number> {
  // Importing registers the 'wasm' backend and its kernels; the .wasm binaries are
  // found next to the package's dist/ files in Node.
  await import('@tensorflow/tfjs-backend-wasm');
  if (threads > 1) return (await initThreadedWasm(threads)).threads;
  const running = threadedWasmInfo();
  if (running !== null) {
    // tf.setBackend('wasm') would silently reuse the threaded instance.
    throw new Error(`wasm with threads: 1 requested but the threaded wasm backend is running with ${running.threads} threads; call shutdownBackend() first`);
  }
  await activate('wasm');
  return 1;
}

function wasmReason(threads: number): string {
  return threads > 1 ? 'embedded WASM backend (threaded SIMD build)' : 'embedded WASM backend (SIMD)';
}

/**
 * Selects and initialises a backend. Call once, before any tensor is made.
 * Throws with install instructions if an explicitly requested backend is missing.
 */
export async function initBackend(choice: BackendChoice | string = 'auto', options: InitBackendOptions = {}): Promise<BackendInfo> {
  if (!isBackendChoice(choice)) {
    throw new Error(`unknown backend '${choice}': expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const log = options.onLog ?? (() => undefined);
  const threads = options.threads ?? 1;
  validateThreads(threads);
  if (threads > 1 && choice !== 'auto' && choice !== 'wasm') {
    throw new Error(`threads: ${threads} applies to the wasm backend only, received backend '${choice}' (use threads: 1)`);
  }
  let info: BackendInfo;
  if (choice === 'auto') {
    const skipped: string[] = [];
    let chosen: BackendInfo | null = null;
    for (const c of ['tensorflow-gpu', 'tensorflow'] as const) {
      const r = tryRequireNode(NODE_PACKAGES[c]);
      if (r.loaded) {
        await activate('tensorflow');
        const ignored = threads > 1 ? `; threads: ${threads} ignored, tfjs-node manages its own threads` : '';
        chosen = { choice: c, tfBackend: tf.getBackend(), reason: `auto: ${NODE_PACKAGES[c]} loaded${ignored}`, threads: null };
        break;
      }
      skipped.push(r.why);
    }
    if (chosen === null) {
      const used = await initWasm(threads);
      chosen = { choice: 'wasm', tfBackend: tf.getBackend(), reason: `auto: ${skipped.join('; ')}; using the ${wasmReason(used)}`, threads: used };
    }
    info = chosen;
  } else if (choice === 'tensorflow-gpu' || choice === 'tensorflow') {
    const pkg = NODE_PACKAGES[choice];
    const r = tryRequireNode(pkg);
    if (!r.loaded) {
      throw new Error(
        `backend '${choice}' requested but ${r.why}. Install it with \`npm install ${pkg}@4.22.0\` ` +
          `(it downloads libtensorflow${choice === 'tensorflow-gpu' ? ' and needs CUDA 11.8 + cuDNN 8.6' : ''}), ` +
          `or use --backend wasm (the embedded default) or --backend auto.`,
      );
    }
    await activate('tensorflow');
    info = { choice, tfBackend: tf.getBackend(), reason: `requested: ${pkg}`, threads: null };
  } else if (choice === 'wasm') {
    const used = await initWasm(threads);
    info = { choice, tfBackend: tf.getBackend(), reason: `requested: ${wasmReason(used)}`, threads: used };
  } else {
    await activate('cpu');
    info = { choice, tfBackend: tf.getBackend(), reason: 'requested: pure-JS reference backend (slow; for checks)', threads: null };
  }
  const threadNote = info.threads === null ? '' : `, ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  log(`backend: ${info.choice}${threadNote} (${info.reason})`);
  return info;
}

/**
 * Releases what keeps the process alive after training: the threaded wasm
 * backend's pthread workers (see ./wasmThreads.ts), and deletes its temp worker
 * file. Tensors on that backend become invalid, so call it last. A no-op for the
 * other backends (they hold no threads that block exit); safe to call twice.
 * A later initBackend() starts afresh.
 */
export function shutdownBackend(): void {
  shutdownThreadedWasm();
}
