/**
 * Backend selection in a browser or a Web Worker (the core's initBackend; the
 * Node one, with tfjs-node and the Node-threaded wasm build, is ./backend.ts):
 *
 *   auto    webgpu if navigator.gpu exists and it initialises, else webgl if it
 *           initialises, else wasm; `reason` says why each was passed over
 *   webgl   @tensorflow/tfjs's WebGL backend (registered only in a browser or worker)
 *   webgpu  @tensorflow/tfjs-backend-webgpu, imported on demand so pages that
 *           never ask for it do not load it
 *   wasm    @tensorflow/tfjs-backend-wasm (SIMD); `wasmPaths` serves its .wasm
 *           binaries from the page's own origin instead of next to the script
 *   cpu     pure-JS reference backend (slow; for checks)
 *
 * wasm threads: `threads: 1` (default, as in Node) runs one XNNPACK thread.
 * `threads > 1` needs a cross-origin isolated page (COOP: same-origin, COEP:
 * require-corp), the only place a browser gives out SharedArrayBuffer; tfjs
 * then loads its threaded SIMD binary. The count actually in use is reported.
 *
 * This file imports no Node built-in and uses no Node global: it is part of the
 * core that test/core/bundle.test.ts bundles for the browser.
 */
import * as tf from '@tensorflow/tfjs';

export type BrowserBackendChoice = 'auto' | 'webgl' | 'webgpu' | 'wasm' | 'cpu';
export const BROWSER_BACKEND_CHOICES: readonly BrowserBackendChoice[] = ['auto', 'webgl', 'webgpu', 'wasm', 'cpu'];

/** The same fields and meaning as the Node BackendInfo (backend.ts); `choice` is a browser backend. */
export interface BrowserBackendInfo {
  /** The resolved choice (never 'auto'). */
  readonly choice: Exclude<BrowserBackendChoice, 'auto'>;
  /** tf.getBackend() after initialisation: 'webgl' | 'webgpu' | 'wasm' | 'cpu'. */
  readonly tfBackend: string;
  /** Why this backend was chosen, for the one log line. */
  readonly reason: string;
  /** XNNPACK threads of the wasm backend; null for the others. */
  readonly threads: number | null;
}

export interface InitBrowserBackendOptions {
  /**
   * Where the wasm backend fetches its binaries: a URL prefix ending in '/' under
   * which tfjs-backend-wasm.wasm, -simd.wasm and -threaded-simd.wasm are served
   * (copy them from node_modules/@tensorflow/tfjs-backend-wasm/dist/), or a map
   * from each of those three file names to its URL. Default: tfjs's own lookup,
   * next to the running script. Used whenever wasm is initialised (explicit or auto).
   */
  readonly wasmPaths?: string | Readonly<Record<string, string>>;
  /**
   * XNNPACK threads of the wasm backend. Default 1. > 1 only on a cross-origin
   * isolated page (crossOriginIsolated === true). An error with an explicit
   * webgl / webgpu / cpu choice; ignored (and said in `reason`) when auto picks one.
   */
  readonly threads?: number;
  /** Receives the one line naming the backend and why. Default: no output. */
  readonly onLog?: (line: string) => void;
}

/** The browser globals read here, typed without the DOM lib (the core also compiles for Node). */
interface BrowserGlobals {
  readonly navigator?: { readonly gpu?: unknown };
  readonly crossOriginIsolated?: boolean;
}

// ---------------------------------------------------------------- helpers

function isBrowserBackendChoice(name: string): name is BrowserBackendChoice {
  return (BROWSER_BACKEND_CHOICES as readonly string[]).includes(name);
}

/** Result of trying one backend: either active, or why not (for `reason` or the error). */
type Attempt = { ok: true } | { ok: false; why: string };

/** tf.setBackend, with "not registered" and "returned false" turned into a reason. */
async function tryActivate(name: string, notRegistered: string): Promise<Attempt> {
  if (tf.findBackendFactory(name) == null) return { ok: false, why: notRegistered };
  // tfjs catches the backend's init error, warns on the console and returns false.
  const ok = await tf.setBackend(name);
  if (!ok) return { ok: false, why: `backend '${name}' failed to initialise (tf.setBackend returned false; the console has tfjs's warning)` };
  await tf.ready();
  return { ok: true };
}

async function tryWebgpu(): Promise<Attempt> {
  if ((globalThis as BrowserGlobals).navigator?.gpu == null) {
    return { ok: false, why: 'WebGPU unavailable (no navigator.gpu)' };
  }
  try {
    // Importing registers 'webgpu' (only when navigator.gpu exists).
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    return { ok: false, why: `WebGPU unavailable (@tensorflow/tfjs-backend-webgpu failed to load: ${String((e as Error).message ?? e).split('\n')[0]})` };
  }
  return tryActivate('webgpu', 'WebGPU unavailable (@tensorflow/tfjs-backend-webgpu did not register it)');
}

function tryWebgl(): Promise<Attempt> {
  // @tensorflow/tfjs registers 'webgl' only where device_util.isBrowser() (a window or a worker).
  return tryActivate('webgl', 'WebGL unavailable (tfjs registers it only in a browser or Web Worker)');
}

function validateThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`threads must be an integer >= 1, received ${threads}`);
  }
  if (threads > 1 && (globalThis as BrowserGlobals).crossOriginIsolated !== true) {
    throw new Error(
      `threads: ${threads} needs a cross-origin isolated page (crossOriginIsolated is ` +
        `${String((globalThis as BrowserGlobals).crossOriginIsolated)}): serve it with the headers ` +
        '`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp` ' +
        'so the wasm backend may use SharedArrayBuffer, or use threads: 1',
    );
  }
}

function describeWasmPaths(wasmPaths: InitBrowserBackendOptions['wasmPaths']): string {
  if (wasmPaths === undefined) return 'next to the running script (tfjs default; pass wasmPaths to serve them from elsewhere)';
  if (typeof wasmPaths === 'string') return `under '${wasmPaths}'`;
  return `at ${Object.values(wasmPaths).join(', ')}`;
}

/** Initialises wasm with `threads` XNNPACK threads; returns the count in use. */
async function initWasm(threads: number, wasmPaths: InitBrowserBackendOptions['wasmPaths']): Promise<number> {
  if (typeof wasmPaths === 'string' && !wasmPaths.endsWith('/')) {
    // tfjs concatenates prefix + file name: 'wasm' would fetch 'wasmtfjs-backend-wasm.wasm'.
    throw new Error(`wasmPaths must be a URL prefix ending in '/', received '${wasmPaths}'`);
  }
  // Importing registers the 'wasm' backend and its kernels.
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (tf.findBackend('wasm') != null) {
    // Already initialised: paths and thread count are fixed at init.
    const running = wasm.getThreadsCount();
    if (running !== threads) {
      throw new Error(`wasm with threads: ${threads} requested but the wasm backend is already running with ${running}; call tf.removeBackend('wasm') first`);
    }
  } else {
    if (wasmPaths !== undefined) wasm.setWasmPaths(wasmPaths as string | Record<string, string>);
    wasm.setThreadsCount(threads);
  }
  const attempt = await tryActivate('wasm', 'wasm unavailable (@tensorflow/tfjs-backend-wasm did not register it)');
  if (!attempt.ok) {
    throw new Error(
      `${attempt.why}. Its .wasm binaries were looked up ${describeWasmPaths(wasmPaths)}; ` +
        'serve tfjs-backend-wasm.wasm, tfjs-backend-wasm-simd.wasm and tfjs-backend-wasm-threaded-simd.wasm ' +
        'from node_modules/@tensorflow/tfjs-backend-wasm/dist/ there',
    );
  }
  return wasm.getThreadsCount();
}

function wasmReason(requested: number, used: number): string {
  const build = used > 1 ? 'WASM backend (threaded SIMD)' : 'WASM backend (SIMD)';
  return used === requested ? build : `${build}; threads: ${requested} requested, XNNPACK runs ${used}`;
}

// ---------------------------------------------------------------- initBrowserBackend

/**
 * Selects and initialises a backend in a browser or worker. Call once, before
 * any tensor is made. Throws when an explicitly requested backend is
 * unavailable or fails to initialise, saying why.
 */
export async function initBrowserBackend(
  choice: BrowserBackendChoice | string = 'auto',
  options: InitBrowserBackendOptions = {},
): Promise<BrowserBackendInfo> {
  if (!isBrowserBackendChoice(choice)) {
    throw new Error(`unknown backend '${choice}': expected one of ${BROWSER_BACKEND_CHOICES.join(', ')}`);
  }
  const log = options.onLog ?? (() => undefined);
  const threads = options.threads ?? 1;
  if (threads !== 1 && choice !== 'auto' && choice !== 'wasm') {
    throw new Error(`threads: ${threads} applies to the wasm backend only, received backend '${choice}' (use threads: 1)`);
  }
  validateThreads(threads);

  let info: BrowserBackendInfo;
  if (choice === 'auto') {
    const ignored = threads > 1 ? `; threads: ${threads} ignored, it applies to wasm only` : '';
    const webgpu = await tryWebgpu();
    const webgl = webgpu.ok ? webgpu : await tryWebgl();
    if (webgpu.ok) {
      info = { choice: 'webgpu', tfBackend: tf.getBackend(), reason: `auto: navigator.gpu present and WebGPU initialised${ignored}`, threads: null };
    } else if (webgl.ok) {
      info = { choice: 'webgl', tfBackend: tf.getBackend(), reason: `auto: ${webgpu.why}; WebGL initialised${ignored}`, threads: null };
    } else {
      const used = await initWasm(threads, options.wasmPaths);
      info = { choice: 'wasm', tfBackend: tf.getBackend(), reason: `auto: ${webgpu.why}; ${webgl.why}; using the ${wasmReason(threads, used)}`, threads: used };
    }
  } else if (choice === 'webgpu' || choice === 'webgl') {
    const attempt = choice === 'webgpu' ? await tryWebgpu() : await tryWebgl();
    if (!attempt.ok) {
      throw new Error(`backend '${choice}' requested but ${attempt.why}; use 'wasm' (or 'auto', which falls back to it)`);
    }
    info = { choice, tfBackend: tf.getBackend(), reason: `requested: ${choice === 'webgpu' ? 'WebGPU' : 'WebGL'}`, threads: null };
  } else if (choice === 'wasm') {
    const used = await initWasm(threads, options.wasmPaths);
    info = { choice, tfBackend: tf.getBackend(), reason: `requested: ${wasmReason(threads, used)}`, threads: used };
  } else {
    const attempt = await tryActivate('cpu', 'cpu unavailable (not registered)');
    if (!attempt.ok) throw new Error(`backend 'cpu' requested but ${attempt.why}`);
    info = { choice, tfBackend: tf.getBackend(), reason: 'requested: pure-JS reference backend (slow; for checks)', threads: null };
  }
  const threadNote = info.threads === null ? '' : `, ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  log(`backend: ${info.choice}${threadNote} (${info.reason})`);
  return info;
}
