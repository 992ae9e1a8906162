/**
 * A family's image batches in the one loop (./loop.ts): a seeded BatchIterator whose
 * position goes into the training state and comes back on resume, and the batch
 * plumbing every image family shares (draw, use, dispose; a probe on the first
 * examples for the memory estimate).
 */
import * as tf from '@tensorflow/tfjs';
import { Batch, BatchIterator, BatchIteratorState, fixedBatch } from '../data/batches';
import type { ImageDataset } from '../data/dataset';
import type { StepGradients } from './loop';

export function disposeBatch(batch: Batch): void {
  tf.dispose([batch.x, ...(batch.labels ? [batch.labels] : [])]);
}

export class LoopBatches {
  private position: BatchIteratorState = { epoch: 0, position: 0 };
  private made: BatchIterator | null = null;

  constructor(readonly dataset: ImageDataset, readonly options: { readonly batchSize: number; readonly seed: number; readonly padTo: number | undefined }) {}

  /** The iterator, made at first use (after restore() on a resume). */
  get iterator(): BatchIterator {
    this.made ??= new BatchIterator(this.dataset, { batchSize: this.options.batchSize, seed: this.options.seed, padTo: this.options.padTo, state: this.position });
    return this.made;
  }

  /** A family's `restore`: the position saved in the training state. */
  restore(json: Record<string, unknown>): void {
    if (this.made !== null) throw new Error('LoopBatches.restore: the iterator has already started');
    this.position = json.iterator as BatchIteratorState;
  }

  /** A family's `stateJson`: the position to save. */
  stateJson(): Record<string, unknown> {
    return { iterator: this.iterator.state() };
  }

  /** f of the next batch (disposed after). */
  withNext<T>(f: (batch: Batch) => T): T {
    const batch = this.iterator.next();
    try {
      return f(batch);
    } finally {
      disposeBatch(batch);
    }
  }

  /** A family's `probe`: the loss and gradients of the first b examples, computed and dropped. */
  probe(b: number, lossAndGrads: (batch: Batch) => StepGradients): void {
    const batch = fixedBatch(this.dataset, Array.from({ length: b }, (_, i) => i), { padTo: this.options.padTo });
    try {
      const { loss, grads } = lossAndGrads(batch);
      tf.dispose([loss, ...grads.values()]);
    } finally {
      disposeBatch(batch);
    }
  }
}
