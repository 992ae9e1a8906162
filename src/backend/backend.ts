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
 */
import * as tf from '@tensorflow/tfjs';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The resolved choice (never 'auto'). */
  readonly choice: Exclude<BackendChoice, 'auto'>;
  /** tf.getBackend() after initialisation: 'tensorflow' | 'wasm' | 'cpu'. */
  readonly tfBackend: string;
  /** Why this backend was chosen, for the one log line. */
  readonly reason: string;
}

export interface InitBackendOptions {
  /** Receives the one line naming the backend and why. Default: no output. */
  readonly onLog?: (line: string) => void;
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

async function initWasm(): Promise<void> {
  // Importing registers the 'wasm' backend and its kernels; the .wasm binaries are
  // found next to the package's dist/ files in Node.
  await import('@tensorflow/tfjs-backend-wasm');
  await activate('wasm');
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
  let info: BackendInfo;
  if (choice === 'auto') {
    const skipped: string[] = [];
    let chosen: BackendInfo | null = null;
    for (const c of ['tensorflow-gpu', 'tensorflow'] as const) {
      const r = tryRequireNode(NODE_PACKAGES[c]);
      if (r.loaded) {
        await activate('tensorflow');
        chosen = { choice: c, tfBackend: tf.getBackend(), reason: `auto: ${NODE_PACKAGES[c]} loaded` };
        break;
      }
      skipped.push(r.why);
    }
    if (chosen === null) {
      await initWasm();
      chosen = { choice: 'wasm', tfBackend: tf.getBackend(), reason: `auto: ${skipped.join('; ')}; using the embedded WASM backend` };
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
    info = { choice, tfBackend: tf.getBackend(), reason: `requested: ${pkg}` };
  } else if (choice === 'wasm') {
    await initWasm();
    info = { choice, tfBackend: tf.getBackend(), reason: 'requested: embedded WASM backend (SIMD)' };
  } else {
    await activate('cpu');
    info = { choice, tfBackend: tf.getBackend(), reason: 'requested: pure-JS reference backend (slow; for checks)' };
  }
  log(`backend: ${info.choice} (${info.reason})`);
  return info;
}
