/**
 * Loss fixtures (issue 14): one short, seeded run of each model family's
 * trainer (diffusion: class-conditional, text-conditional, super-resolution;
 * CLIP; autoencoder; prior; classifier; see ./lossFixtureRuns.ts) must give
 * the 50 losses recorded in test/fixtures/loss-fixtures.json.
 *
 * The comparison is bit-equality (toEqual on JS numbers holding float32
 * values) and holds on the backend the fixture was recorded on: wasm, 1
 * thread (XNNPACK's single-thread SIMD build). Another backend or thread
 * count sums in another order and is not expected to match.
 *
 * This test never rewrites the fixture. To regenerate it, for a deliberate
 * change of the training numerics only:
 *   npx tsx test/fixtures/recordLossFixtures.ts [family ...]
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, BackendInfo } from '../../src/backend/backend';
import { FAMILIES, FIXTURE_STEPS } from './lossFixtureRuns';

interface FamilyFixture {
  readonly backend: string;
  readonly threads: number | null;
  readonly steps: number;
  readonly losses: number[];
  readonly reported?: Record<string, number>;
}

const FIXTURE = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'loss-fixtures.json'), 'utf8')) as { families: Record<string, FamilyFixture> };

let backend: BackendInfo;
beforeAll(async () => {
  backend = await initBackend('wasm', { threads: 1 });
});

describe('loss fixtures (bit-equal on wasm, 1 thread)', () => {
  it('covers every family of the runs, each with 50 recorded losses on wasm, 1 thread', () => {
    expect(Object.keys(FIXTURE.families).sort()).toEqual(Object.keys(FAMILIES).sort());
    for (const f of Object.values(FIXTURE.families)) {
      expect([f.backend, f.threads, f.steps, f.losses.length]).toEqual(['wasm', 1, FIXTURE_STEPS, FIXTURE_STEPS]);
    }
  });

  it.each(Object.keys(FAMILIES))('%s: the 50 losses equal the recorded ones exactly', async (name) => {
    const expected = FIXTURE.families[name];
    expect([backend.tfBackend, backend.threads]).toEqual([expected.backend, expected.threads]);
    const before = tf.memory().numTensors;
    const { losses, reported } = await FAMILIES[name].run();
    expect(tf.memory().numTensors).toBe(before);
    expect(losses).toHaveLength(FIXTURE_STEPS);
    // Bit-equality: float32 losses read back as doubles, JSON round-trips doubles exactly.
    expect(losses).toEqual(expected.losses);
    expect(reported).toEqual(expected.reported);
  });

  it('classifier: the per-step losses are the ones the trainer reads (finalLoss = mean of steps 20, 40 and 50)', () => {
    // trainClassifier (through train/loop.ts) reads its loss every 20 steps and at the last, and reports the mean of
    // the last three reads. (Before the one loop it read at steps 1, 21, 41 and the last: finalLoss was the mean of
    // steps 21, 41 and 50; the recorded losses themselves did not change.)
    const { losses, reported } = FIXTURE.families.classifier;
    expect(reported?.finalLoss).toBe((losses[19] + losses[39] + losses[49]) / 3);
  });
});
