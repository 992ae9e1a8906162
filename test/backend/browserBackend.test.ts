/**
 * Browser backend selection (src/backend/browserBackend.ts), the parts Node can
 * check honestly: choice and option validation, webgl / webgpu reported missing
 * (tfjs registers them only in a browser), auto falling back to wasm, wasmPaths
 * applied (the real folder works; a wrong one fails, in browserBackendWasmPaths.test.ts
 * since a failed init sticks to the wasm module), cpu. webgl / webgpu / threaded
 * wasm in a real browser are checked by the page's browser test. Tests run in
 * order: the wasm backend, once up, keeps its paths and thread count.
 */
import * as tf from '@tensorflow/tfjs';
import path = require('path');
import { BROWSER_BACKEND_CHOICES, initBrowserBackend } from '../../src/backend/browserBackend';

/** Folder holding tfjs-backend-wasm*.wasm, with the trailing '/' tfjs concatenates onto. */
const WASM_DIR = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;

/** sum_{i=1..10} i^2 = n (n + 1) (2n + 1) / 6 = 385, on whatever backend is active; no tensor leaks. */
async function checkClosedForm(): Promise<void> {
  const before = tf.memory().numTensors;
  const s = tf.tidy(() => tf.range(1, 11).square().sum());
  expect(await s.data()).toEqual(new Float32Array([385]));
  s.dispose();
  expect(tf.memory().numTensors).toBe(before);
}

describe('initBrowserBackend', () => {
  it('rejects an unknown name, listing the choices', async () => {
    await expect(initBrowserBackend('tensorflow')).rejects.toThrow("unknown backend 'tensorflow': expected one of auto, webgl, webgpu, wasm, cpu");
    expect(BROWSER_BACKEND_CHOICES).toEqual(['auto', 'webgl', 'webgpu', 'wasm', 'cpu']);
  });

  it('validates threads before touching any backend', async () => {
    await expect(initBrowserBackend('webgl', { threads: 2 })).rejects.toThrow(
      "threads: 2 applies to the wasm backend only, received backend 'webgl' (use threads: 1)",
    );
    await expect(initBrowserBackend('wasm', { threads: 0 })).rejects.toThrow('threads must be an integer >= 1, received 0');
    await expect(initBrowserBackend('wasm', { threads: 1.5 })).rejects.toThrow('threads must be an integer >= 1, received 1.5');
    // Node has no crossOriginIsolated global: no SharedArrayBuffer-backed wasm threads through this entry.
    await expect(initBrowserBackend('wasm', { threads: 2 })).rejects.toThrow(
      'threads: 2 needs a cross-origin isolated page (crossOriginIsolated is undefined): serve it with the headers ' +
        '`Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`',
    );
    await expect(initBrowserBackend('auto', { threads: 2 })).rejects.toThrow('needs a cross-origin isolated page');
  });

  it('explicit webgl / webgpu say they are unavailable outside a browser', async () => {
    await expect(initBrowserBackend('webgl')).rejects.toThrow(
      "backend 'webgl' requested but WebGL unavailable (tfjs registers it only in a browser or Web Worker); use 'wasm' (or 'auto', which falls back to it)",
    );
    await expect(initBrowserBackend('webgpu')).rejects.toThrow("backend 'webgpu' requested but WebGPU unavailable (no navigator.gpu)");
  });

  it('wasmPaths must be a prefix ending in /', async () => {
    await expect(initBrowserBackend('wasm', { wasmPaths: '/static/wasm' })).rejects.toThrow(
      "wasmPaths must be a URL prefix ending in '/', received '/static/wasm'",
    );
  });

  it('wasm with wasmPaths at the real binaries works, one thread', async () => {
    const lines: string[] = [];
    const info = await initBrowserBackend('wasm', { wasmPaths: WASM_DIR, onLog: (l) => lines.push(l) });
    expect(info).toEqual({ choice: 'wasm', tfBackend: 'wasm', reason: 'requested: WASM backend (SIMD)', threads: 1 });
    expect(lines).toEqual(['backend: wasm, 1 thread (requested: WASM backend (SIMD))']);
    await checkClosedForm();
  });

  it('auto falls back to wasm, saying why webgpu and webgl were passed over', async () => {
    const lines: string[] = [];
    const info = await initBrowserBackend('auto', { onLog: (l) => lines.push(l) });
    const reason =
      'auto: WebGPU unavailable (no navigator.gpu); WebGL unavailable (tfjs registers it only in a browser or Web Worker); ' +
      'using the WASM backend (SIMD)';
    expect(info).toEqual({ choice: 'wasm', tfBackend: 'wasm', reason, threads: 1 });
    expect(lines).toEqual([`backend: wasm, 1 thread (${reason})`]);
    await checkClosedForm();
  });

  it('refuses a different thread count once wasm is running', async () => {
    const g = globalThis as { crossOriginIsolated?: boolean };
    g.crossOriginIsolated = true; // pretend to be an isolated page, so the request reaches the wasm check
    try {
      await expect(initBrowserBackend('wasm', { threads: 2 })).rejects.toThrow(
        "wasm with threads: 2 requested but the wasm backend is already running with 1; call tf.removeBackend('wasm') first",
      );
    } finally {
      delete g.crossOriginIsolated;
    }
  });

  it('cpu works and computes a closed form', async () => {
    const lines: string[] = [];
    const info = await initBrowserBackend('cpu', { onLog: (l) => lines.push(l) });
    expect(info).toEqual({ choice: 'cpu', tfBackend: 'cpu', reason: 'requested: pure-JS reference backend (slow; for checks)', threads: null });
    expect(lines).toEqual(['backend: cpu (requested: pure-JS reference backend (slow; for checks))']);
    await checkClosedForm();
  });
});
