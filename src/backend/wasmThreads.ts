/**
 * The multi-threaded SIMD build of tfjs-backend-wasm 4.22, started under Node.
 *
 * tfjs only uses this build in browsers: its WASM_HAS_MULTITHREAD_SUPPORT flag
 * is hard-coded false under Node. The build itself runs fine in Node
 * (../shared/notes/wasm-multicore.md: ~1.85x matMul, 1.6-1.9x conv2d on 2
 * cores); three things stand in the way, and this file does each once:
 *
 *   1. The pthread worker ships as a JS string (wasmWorkerContents) that tfjs
 *      turns into a blob: URL, which Node's Worker refuses (ERR_WORKER_PATH).
 *      We write it to a unique temp directory in os.tmpdir() instead.
 *   2. Each worker then imports the "main script"; tfjs posts a Blob there.
 *      We give it the path of the standalone glue (wasm-out/...threaded-simd.js).
 *   3. XNNPACK's pool is capped at min(requested, 8, logicalCores / 2) where
 *      logicalCores = os.cpus().length is read once, by a C++ static
 *      constructor, at runtime init. On a 2-core machine 2 threads silently
 *      become 1. We make os.cpus() report max(cores, 2 * threads) entries
 *      for exactly that synchronous init call (Module.preRun ->
 *      onRuntimeInitialized) and restore it at once.
 *
 * Rather than patching tfjs's own init() (its flag, URL.createObjectURL), we
 * load the glue ourselves, build the `BackendWasm` the package exports around
 * it, and re-register that instance under the name 'wasm': kernels are
 * registered per backend name, so every wasm kernel of the normal package
 * import keeps working. The package's original 'wasm' factory is restored on
 * shutdown, so a later single-thread init works.
 *
 * Process lifetime: every XNNPACK pool thread is an emscripten pthread, i.e.
 * a Node worker_thread running a loop that waits for work; emscripten ref()s
 * the worker of each running pthread, so the event loop never empties and the
 * process never exits by itself. Only disposing the backend (tf.removeBackend
 * -> BackendWasm.dispose -> C++ dispose + PThread.terminateAllThreads) ends
 * them: call `shutdownThreadedWasm()` (backend.ts: `shutdownBackend()`).
 *
 * Written against @tensorflow/tfjs-backend-wasm 4.22.0 exactly (it uses the
 * glue's config hooks and the cwraps tfjs's init() adds); other versions are
 * refused with an error rather than guessed at.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import fs = require('fs');
import os = require('os');
import path = require('path');

/** The package version this file was written and verified against. */
export const THREADED_WASM_PACKAGE_VERSION = '4.22.0';
/** XNNPACK's hard cap in backend.cc. */
export const THREADED_WASM_MAX_THREADS = 8;
/** Runtime init normally takes 0.15-0.4 s; a worker that fails to load would otherwise hang it forever. */
const INIT_TIMEOUT_MS = 60_000;
/** tfjs-backend-wasm registers 'wasm' with this priority (dist/base.js WASM_PRIORITY). */
const WASM_PRIORITY = 2;
const GLUE_FILE = 'tfjs-backend-wasm-threaded-simd.js';
const WORKER_FILE = 'tfjs-backend-wasm-threaded-simd.worker.js';

export interface ThreadedWasmInfo {
  /** XNNPACK threads actually in use (getThreadsCount()), equal to the request. */
  readonly threads: number;
  /** The pthread worker source written to disk; removed by shutdownThreadedWasm(). */
  readonly workerFile: string;
  /** Wall time of the glue + backend start, ms (0.15-0.4 s typical; 8 pthread workers are pre-spawned). */
  readonly initMs: number;
}

// ---------------------------------------------------------------- glue types

/** The parts of the emscripten module this file touches (typed here; the glue ships no usable types). */
interface ThreadedGlueModule {
  cwrap(ident: string, returnType: 'number' | null, argTypes: readonly 'number'[]): (...args: number[]) => number;
  PThread: { terminateAllThreads(): void; unusedWorkers: Array<{ terminate(): unknown }> };
  tfjs?: unknown;
}

interface GlueConfig {
  mainScriptUrlOrBlob: string;
  locateFile(file: string, prefix: string): string;
  preRun: Array<() => void>;
  onRuntimeInitialized(): void;
  onAbort(what: unknown): void;
}

type GlueFactory = (config: GlueConfig) => Promise<ThreadedGlueModule>;
type WasmPackage = typeof import('@tensorflow/tfjs-backend-wasm');
type OsModule = { cpus: typeof os.cpus };

// ---------------------------------------------------------------- state

interface ActiveState {
  readonly info: ThreadedWasmInfo;
  readonly tempDir: string;
  readonly originalFactory: () => tf.KernelBackend | Promise<tf.KernelBackend>;
  readonly pkg: WasmPackage;
  readonly onExit: () => void;
}

/** Module state: one threaded backend per tfjs instance (the engine itself is a singleton). */
let active: ActiveState | null = null;

/** What the active threaded backend runs with, or null when it is not in use. */
export function threadedWasmInfo(): ThreadedWasmInfo | null {
  return active === null ? null : active.info;
}

// ---------------------------------------------------------------- helpers

/** Throws unless `threads` is an integer in [1, min(os.cpus().length, 8)]. */
export function validateThreads(threads: number): void {
  const cores = os.cpus().length;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`threads must be a positive integer, received ${threads}`);
  }
  if (threads > cores) {
    throw new Error(`threads: ${threads} requested but this machine has ${cores} logical cores (os.cpus().length)`);
  }
  if (threads > THREADED_WASM_MAX_THREADS) {
    throw new Error(`threads: ${threads} requested but the threaded wasm build caps XNNPACK at ${THREADED_WASM_MAX_THREADS} threads`);
  }
}

/** Resolves a file of the installed tfjs-backend-wasm package (the package has no "exports" map). */
function packageFile(...parts: string[]): string {
  const pkgJson = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
  return path.join(path.dirname(pkgJson), ...parts);
}

function loadGlueFactory(gluePath: string): GlueFactory {
  const loaded: unknown = require(gluePath);
  if (typeof loaded !== 'function') throw new Error(`${gluePath} did not export the emscripten module factory`);
  return loaded as GlueFactory;
}

function loadWorkerSource(): string {
  const loaded: unknown = require(packageFile('wasm-out', WORKER_FILE));
  const src = (loaded as { wasmWorkerContents?: unknown }).wasmWorkerContents;
  if (typeof src !== 'string') throw new Error(`wasm-out/${WORKER_FILE} has no wasmWorkerContents string`);
  // The source is a template literal: its "\n" escapes inside JS string literals have become
  // real newlines. Re-escape them, as tfjs does before making its Blob (else: SyntaxError).
  return src.replace(/\n/g, '\\n');
}

function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Loads the glue and starts its runtime with the core count patched for the init call only. */
async function startGlue(threads: number, workerFile: string): Promise<ThreadedGlueModule> {
  const gluePath = packageFile('wasm-out', GLUE_FILE);
  const factory = loadGlueFactory(gluePath);
  const osModule = os as OsModule;
  const realCpus = osModule.cpus;
  const restoreCpus = (): void => {
    osModule.cpus = realCpus;
  };
  let abortReason: string | null = null;
  const config: GlueConfig = {
    mainScriptUrlOrBlob: gluePath,
    locateFile: (file, prefix) => (file.endsWith('.worker.js') ? workerFile : prefix + file),
    // preRun -> C++ static constructors (read os.cpus()) -> onRuntimeInitialized run in one
    // synchronous stretch: no other JS can observe the patched os.cpus.
    preRun: [
      () => {
        osModule.cpus = () => {
          const real = realCpus();
          const wanted = Math.max(real.length, 2 * threads);
          return Array.from({ length: wanted }, (_, i) => real[i % real.length]);
        };
      },
    ],
    onRuntimeInitialized: restoreCpus,
    onAbort: (what) => {
      abortReason = String(what);
    },
  };
  try {
    return await withTimeout(factory(config), INIT_TIMEOUT_MS, 'threaded wasm runtime init');
  } catch (e) {
    throw new Error(`${messageOf(e)}${abortReason === null ? '' : ` (emscripten abort: ${abortReason})`}`);
  } finally {
    restoreCpus();
  }
}

/** The six cwraps tfjs's own init() puts on module.tfjs (backend_wasm.js, 4.22.0). */
function addTfjsBridge(module: ThreadedGlueModule): void {
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
}

// ---------------------------------------------------------------- API

/**
 * Makes 'wasm' the active tfjs backend, running the threaded SIMD build with
 * exactly `threads` XNNPACK threads. Call before any tensor is made: an
 * existing 'wasm' backend instance is disposed (its tensors become invalid).
 * Throws, never falls back, if anything fails; the caller may then use the
 * single-thread build. Call `shutdownThreadedWasm()` before the process should
 * exit (see the header).
 */
export async function initThreadedWasm(threads: number): Promise<ThreadedWasmInfo> {
  validateThreads(threads);
  if (active !== null) {
    throw new Error(`the threaded wasm backend is already running with ${active.info.threads} threads; call shutdownBackend() first`);
  }
  const start = Date.now();
  const fail = (why: string): Error =>
    new Error(`threaded wasm backend (threads: ${threads}) failed: ${why}. Use threads: 1 for the single-thread SIMD build.`);

  const pkg: WasmPackage = await import('@tensorflow/tfjs-backend-wasm');
  if (pkg.version_wasm !== THREADED_WASM_PACKAGE_VERSION) {
    throw fail(`written for @tensorflow/tfjs-backend-wasm ${THREADED_WASM_PACKAGE_VERSION}, found ${pkg.version_wasm}`);
  }
  const originalFactory = tf.findBackendFactory('wasm');
  if (originalFactory === null) throw fail("no 'wasm' backend is registered (the package import should register it)");

  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-diffusion-wasm-threads-'));
  // .cjs: a package.json with "type": "module" above os.tmpdir() must not turn it into an ES module.
  const workerFile = path.join(tempDir, WORKER_FILE.replace(/\.js$/, '.cjs'));
  let backend: BackendWasm | null = null;
  let module: ThreadedGlueModule | null = null;
  try {
    fs.writeFileSync(workerFile, loadWorkerSource());
    module = await startGlue(threads, workerFile);
    addTfjsBridge(module);
    // BackendWasm's constructor calls init_with_threads_count(<package threadsCount>).
    pkg.setThreadsCount(threads);
    backend = new pkg.BackendWasm(module as unknown as ConstructorParameters<typeof BackendWasm>[0]);
    const got = pkg.getThreadsCount();
    if (got !== threads) throw new Error(`XNNPACK reports ${got} threads, expected ${threads}`);
    // The glue pre-spawns 8 pthread workers (its PTHREAD_POOL_SIZE); XNNPACK's pool runs threads - 1 of
    // them (the calling thread is the other). End the idle rest: 7-15 MB of RSS each. Should a pthread
    // be created later, emscripten spawns a worker on demand from the worker file (kept until shutdown).
    for (const idle of module.PThread.unusedWorkers) idle.terminate();
    module.PThread.unusedWorkers = [];
  } catch (e) {
    if (backend !== null) backend.dispose();
    else if (module !== null) module.PThread.terminateAllThreads();
    pkg.setThreadsCount(-1);
    removeDir(tempDir);
    throw fail(messageOf(e));
  }

  // Swap the registration: the engine runs every 'wasm' kernel's setupFunc on our instance.
  const instance = backend;
  let handedOut = false;
  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    () => {
      if (handedOut) throw new Error('the threaded wasm backend was disposed; call initBackend again');
      handedOut = true;
      return instance;
    },
    WASM_PRIORITY,
  );
  const onExit = (): void => removeDir(tempDir); // safety net if shutdown is never called
  process.once('exit', onExit);
  const info: ThreadedWasmInfo = { threads, workerFile, initMs: Date.now() - start };
  active = { info, tempDir, originalFactory, pkg, onExit };
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend returned false');
    await tf.ready();
  } catch (e) {
    shutdownThreadedWasm();
    if (!handedOut) instance.dispose(); // the engine never took it, so removeBackend did not dispose it
    throw fail(messageOf(e));
  }
  return info;
}

/**
 * Disposes the threaded backend (ends its pthread workers, so the process can
 * exit), deletes the temp worker file and restores the package's single-thread
 * 'wasm' registration. Tensors made on it become invalid. No-op when inactive.
 */
export function shutdownThreadedWasm(): void {
  if (active === null) return;
  const { tempDir, originalFactory, pkg, onExit } = active;
  active = null;
  try {
    tf.removeBackend('wasm'); // BackendWasm.dispose(): C++ dispose + PThread.terminateAllThreads()
  } finally {
    tf.registerBackend('wasm', originalFactory, WASM_PRIORITY);
    pkg.setThreadsCount(-1); // the package default
    process.removeListener('exit', onExit);
    removeDir(tempDir);
  }
}
