/**
 * Per-kernel time of one call, from tf.profile.
 *
 * tf.profile records every kernel, and also one entry per tf.customGrad forward
 * (named after the active scope, usually 'unnamed scope'). That entry's time
 * INCLUDES the kernels run inside it, which are recorded separately as well, so
 * summing all entries double counts. Only registered kernels of the active
 * backend are counted here (custom-gradient scopes are left out); the backward
 * pass of a customGrad is not a scope and its kernels appear normally.
 *
 * wallMs - totalMs is time outside kernels (JS bookkeeping, tape, allocation).
 */
import * as tf from '@tensorflow/tfjs';

export interface KernelRow {
  readonly kernel: string;
  /** Summed kernel time. */
  readonly ms: number;
  /** ms / totalMs. */
  readonly share: number;
  readonly calls: number;
}

export interface KernelProfile {
  /** Sum of the (non-nested) kernel times, ms. */
  readonly totalMs: number;
  /** The top rows by time, largest first. */
  readonly rows: KernelRow[];
  /** Wall-clock time of the whole profiled call, ms (includes profiling overhead). */
  readonly wallMs: number;
  /** Kernels of the call that are not among the top rows (summed into none of them). */
  readonly otherMs: number;
}

/**
 * Runs `fn` once inside tf.tidy under tf.profile and returns the `top` kernels by
 * summed time. `fn` must do all its work synchronously (tensors it returns or
 * leaves behind are disposed by the tidy; variables it assigns persist).
 */
export async function profileKernels(fn: () => void, top = 10): Promise<KernelProfile> {
  if (!Number.isInteger(top) || top < 1) throw new Error(`profileKernels: top must be a positive integer, got ${top}`);
  const backendName = tf.getBackend();
  const t0 = performance.now();
  const info = await tf.profile(() => {
    tf.tidy(fn);
  });
  const wallMs = performance.now() - t0;
  const byName = new Map<string, { ms: number; calls: number }>();
  let totalMs = 0;
  for (const k of info.kernels) {
    if (tf.getKernel(k.name, backendName) === undefined) continue; // a customGrad scope: its kernels are listed too
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const row = byName.get(k.name) ?? { ms: 0, calls: 0 };
    row.ms += ms;
    row.calls += 1;
    byName.set(k.name, row);
    totalMs += ms;
  }
  const all = [...byName.entries()]
    .map(([kernel, r]) => ({ kernel, ms: r.ms, share: totalMs > 0 ? r.ms / totalMs : 0, calls: r.calls }))
    .sort((a, b) => b.ms - a.ms);
  const rows = all.slice(0, top);
  const otherMs = all.slice(top).reduce((s, r) => s + r.ms, 0);
  return { totalMs, rows, wallMs, otherMs };
}
