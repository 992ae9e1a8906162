/**
 * Memory budget of the wasm backend.
 *
 * The wasm32 heap ends at 65535 pages of 64 KiB (4294901760 bytes). Past it,
 * tfjs-backend-wasm 4.22 does not fail cleanly: malloc's NULL is unchecked and
 * tensors are silently overwritten (../shared/notes/wasm-multicore.md). So a run
 * measures what a step needs before it starts and refuses what will not fit.
 *
 * Measurement: `tf.profile` of one full step (forward + backward) at two small
 * batch sizes gives the engine's peak live bytes; peak(B) = fixed + perExample * B
 * is extrapolated linearly (activations grow linearly with the batch).
 */
import * as tf from '@tensorflow/tfjs';

export const WASM_HEAP_LIMIT_BYTES = 4294901760;
/** Share of the heap a run may plan to use: the allocator fragments, and the data set lives outside it. */
export const WASM_USABLE_FRACTION = 0.75;

export interface MemoryEstimate {
  /** Peak live tensor bytes not depending on the batch (weights, optimiser state, ...). */
  readonly fixedBytes: number;
  /** Additional peak bytes per example. */
  readonly perExampleBytes: number;
  /** Batch sizes the estimate was measured at, and their peaks. */
  readonly probes: ReadonlyArray<{ batch: number; peakBytes: number }>;
}

/**
 * Runs `step(batch)` (which must dispose everything it makes) under tf.profile
 * at each probe batch size and fits peak = fixed + perExample * batch.
 */
export async function measureStepMemory(step: (batch: number) => void, probeBatches: readonly [number, number] = [1, 2]): Promise<MemoryEstimate> {
  const probes: Array<{ batch: number; peakBytes: number }> = [];
  for (const batch of probeBatches) {
    const info = await tf.profile(() => {
      step(batch);
    });
    probes.push({ batch, peakBytes: info.peakBytes });
  }
  const [a, b] = probes;
  const perExampleBytes = Math.max(0, (b.peakBytes - a.peakBytes) / (b.batch - a.batch));
  const fixedBytes = Math.max(0, a.peakBytes - perExampleBytes * a.batch);
  return { fixedBytes, perExampleBytes, probes };
}

export function predictPeakBytes(est: MemoryEstimate, batch: number): number {
  return est.fixedBytes + est.perExampleBytes * batch;
}

/** Largest micro-batch that fits the usable wasm heap by the estimate. */
export function maxBatchThatFits(est: MemoryEstimate, limitBytes = WASM_HEAP_LIMIT_BYTES * WASM_USABLE_FRACTION): number {
  if (est.perExampleBytes <= 0) return Number.POSITIVE_INFINITY;
  return Math.max(0, Math.floor((limitBytes - est.fixedBytes) / est.perExampleBytes));
}

const MB = 1024 * 1024;

/**
 * Throws a clear error when a micro-batch of `batch` would not fit the usable
 * wasm heap. Only the wasm backend has this hard ceiling; others pass.
 */
export function assertBatchFits(est: MemoryEstimate, batch: number, backendName: string = tf.getBackend()): void {
  if (backendName !== 'wasm') return;
  const limit = WASM_HEAP_LIMIT_BYTES * WASM_USABLE_FRACTION;
  const need = predictPeakBytes(est, batch);
  if (need > limit) {
    const fit = maxBatchThatFits(est, limit);
    throw new Error(
      `a training step at micro-batch ${batch} needs about ${(need / MB).toFixed(0)} MB of tensor memory ` +
        `(${(est.fixedBytes / MB).toFixed(0)} MB fixed + ${(est.perExampleBytes / MB).toFixed(1)} MB per example, measured), ` +
        `more than the ${(limit / MB).toFixed(0)} MB the wasm heap can safely hold (it ends at 4 GB and overflows silently). ` +
        `Use a micro-batch of at most ${fit} (e.g. --batch ${fit}) or keep the batch and add gradient accumulation ` +
        `(--grad-accum ${Math.ceil(batch / Math.max(1, fit))}).`,
    );
  }
}

/** One line about what a step at `batch` needs and what fits the usable wasm heap. */
export function describeMemory(est: MemoryEstimate, batch: number): string {
  const limit = WASM_HEAP_LIMIT_BYTES * WASM_USABLE_FRACTION;
  const fit = maxBatchThatFits(est, limit);
  return `a step at micro-batch ${batch} needs about ${(predictPeakBytes(est, batch) / MB).toFixed(1)} MB of tensor memory ` +
    `(${(est.fixedBytes / MB).toFixed(1)} MB fixed + ${(est.perExampleBytes / MB).toFixed(2)} MB per example, measured at batches ` +
    `${est.probes.map((p) => p.batch).join(' and ')}); the wasm heap holds ${(limit / MB).toFixed(0)} MB safely: ` +
    `${Number.isFinite(fit) ? `micro-batches up to ${fit}` : 'any micro-batch'}`;
}
