/**
 * A data-parallel pool (./dataParallel.ts) as the one loop's GradientSource (./loop.ts):
 * the family's iterator still draws every micro-batch, so the data order is the one of
 * a one-thread run; only the example indices travel, each worker builds its slice from
 * shared memory.
 */
import * as tf from '@tensorflow/tfjs';
import type { DataParallel } from './dataParallel';
import type { GradientSource } from './loop';
import type { LoopBatches } from './loopBatches';

/** Gradients of micro-batch m of a step (examples [m * micro, (m + 1) * micro) of the step) from `pool`. */
export function dataParallelSource(pool: DataParallel<tf.Tensor>, batches: LoopBatches, micro: number): GradientSource {
  return {
    beginStep: () => pool.broadcastWeights(), // the workers' replicas take this step's weights
    next: (step, m) => batches.withNext((batch) => pool.lossAndGrads(batch.indices, step, m * micro)),
    close: () => pool.close(),
    description: `micro-batch ${micro} split ${pool.sliceSizes(micro).join(' + ')}`,
  };
}
