/** The public entry point exports the library's API (a broken import cycle would leave exports undefined). */
import * as lib from '../src/index';

describe('public API', () => {
  it('exports every building block, defined', () => {
    const names = ['initBackend', 'shutdownBackend', 'Rng', 'Module', 'Conv2d', 'Linear', 'GroupNorm', 'LayerNorm', 'Embedding', 'SelfAttention', 'CrossAttention',
      'UNet', 'unetConfig', 'makeSchedule', 'qSample', 'trainingTarget', 'sample', 'sampleDdpm', 'sampleDdim', 'sampleDpmSolverPP', 'classifierFreeGuidance',
      'trainDiffusion', 'trainConfig', 'AdamW', 'updateEma', 'saveModelWeights', 'loadModelWeights', 'loadDataset', 'BatchIterator', 'readSafetensors',
      'writeSafetensors', 'saveImageGrid', 'loadPixelPipeline', 'generate', 'trainPixelDiffusion', 'unetDenoiser'] as const;
    for (const n of names) expect(typeof (lib as Record<string, unknown>)[n]).toBe('function');
    expect(lib.SAMPLER_NAMES).toEqual(['ddpm', 'ddim', 'dpm-solver++']);
  });
});
