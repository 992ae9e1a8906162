/**
 * A data-parallel pool (./dataParallel.ts) as the one loop's GradientSource (./loop.ts):
 * the family's iterator still draws every micro-batch, so the data order is the one of
 * a one-thread run; only the example indices travel, each worker builds its slice from
 * shared memory.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchIterator } from '../data/batches';
import type { DataParallel } from './dataParallel';
import type { GradientSource } from './loop';

function disposeBatch(batch: Batch): void {
  tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
}

/** Gradients of micro-batch m of a step ([m * micro, (m + 1) * micro) of its examples) from `pool`. */
export function dataParallelSource(pool: DataParallel<tf.Tensor>, data: () => BatchIterator, micro: number): GradientSource {
  return {
    beginStep: () => pool.broadcastWeights(), // the workers' replicas take this step's weights
    next: async (step, m) => {
      const batch = data().next();
      try {
        return await pool.lossAndGrads(batch.indices, step, m * micro);
      } finally {
        disposeBatch(batch);
      }
    },
    close: () => pool.close(),
    description: `micro-batch ${micro} split ${pool.sliceSizes(micro).join(' + ')}`,
  };
}
