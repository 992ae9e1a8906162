/**
 * Backend selection (src/backend/backend.ts). This machine has neither
 * @tensorflow/tfjs-node nor -gpu installed, which is what CI has too; the tests
 * that depend on that skip with a message where they are installed.
 */
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import os = require('os');
import { BACKEND_CHOICES, initBackend, shutdownBackend } from '../../src/backend/backend';

function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const NODE_MISSING = !installed('@tensorflow/tfjs-node') && !installed('@tensorflow/tfjs-node-gpu');
const itNoNode = NODE_MISSING ? it : it.skip;
if (!NODE_MISSING) console.warn('backend.test: tfjs-node is installed, skipping the tests that expect it missing');
const itMulti = NODE_MISSING && os.cpus().length >= 2 ? it : it.skip;

afterAll(() => shutdownBackend());

describe('initBackend', () => {
  it('rejects an unknown name, listing the choices', async () => {
    await expect(initBackend('webgpu')).rejects.toThrow("unknown backend 'webgpu': expected one of auto, tensorflow-gpu, tensorflow, wasm, cpu");
    expect(BACKEND_CHOICES).toEqual(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
  });

  itNoNode('explicit tensorflow / tensorflow-gpu name the install command', async () => {
    await expect(initBackend('tensorflow')).rejects.toThrow(
      "backend 'tensorflow' requested but @tensorflow/tfjs-node is not installed. Install it with `npm install @tensorflow/tfjs-node@4.22.0`",
    );
    await expect(initBackend('tensorflow-gpu')).rejects.toThrow(
      "backend 'tensorflow-gpu' requested but @tensorflow/tfjs-node-gpu is not installed. Install it with `npm install @tensorflow/tfjs-node-gpu@4.22.0`",
    );
    await expect(initBackend('tensorflow-gpu')).rejects.toThrow('CUDA 11.8 + cuDNN 8.6');
  });

  it('cpu works and computes a closed form', async () => {
    const lines: string[] = [];
    const info = await initBackend('cpu', { onLog: (l) => lines.push(l) });
    expect(info).toEqual({ choice: 'cpu', tfBackend: 'cpu', reason: 'requested: pure-JS reference backend (slow; for checks)', threads: null });
    expect(lines).toEqual(['backend: cpu (requested: pure-JS reference backend (slow; for checks))']);
    expect(tf.getBackend()).toBe('cpu');
    const before = tf.memory().numTensors;
    // sum_{i=1..n} i^2 = n (n + 1) (2n + 1) / 6 = 385 for n = 10
    const s = tf.tidy(() => tf.range(1, 11).square().sum());
    expect(await s.data()).toEqual(new Float32Array([385]));
    s.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  itNoNode('auto resolves to wasm, naming the missing tfjs-node packages', async () => {
    const lines: string[] = [];
    const info = await initBackend('auto', { onLog: (l) => lines.push(l) });
    const reason =
      'auto: @tensorflow/tfjs-node-gpu is not installed; @tensorflow/tfjs-node is not installed; using the embedded WASM backend (SIMD)';
    expect(info).toEqual({ choice: 'wasm', tfBackend: 'wasm', reason, threads: 1 });
    expect(lines).toEqual([`backend: wasm, 1 thread (${reason})`]);
    expect(tf.getBackend()).toBe('wasm');
    expect(getThreadsCount()).toBe(1);
    const s = tf.tidy(() => tf.range(1, 11).square().sum());
    expect(await s.data()).toEqual(new Float32Array([385]));
    s.dispose();
  });

  itMulti('auto with threads: 2 starts the threaded wasm build; shutdownBackend ends it', async () => {
    const lines: string[] = [];
    const info = await initBackend('auto', { threads: 2, onLog: (l) => lines.push(l) });
    expect(info.choice).toBe('wasm');
    expect(info.threads).toBe(2);
    expect(info.reason).toMatch(/tfjs-node is not installed; using the embedded WASM backend \(threaded SIMD build\)$/);
    expect(lines).toEqual([`backend: wasm, 2 threads (${info.reason})`]);
    expect(getThreadsCount()).toBe(2);
    const s = tf.tidy(() => tf.matMul(tf.ones([64, 32]), tf.fill([32, 16], 0.5)).sum());
    expect(await s.data()).toEqual(new Float32Array([64 * 16 * 32 * 0.5]));
    s.dispose();
    shutdownBackend();
    expect(tf.findBackend('wasm')).toBeNull(); // disposed; the single-thread factory is registered again
    await initBackend('wasm');
    expect(getThreadsCount()).toBe(1);
  });
});
