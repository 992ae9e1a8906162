/**
 * One entry point over the samplers, chosen by name. The switch is over a closed
 * union; no sampler is probed at run time. Options of another sampler (e.g. `eta`
 * for 'ddpm') are rejected rather than ignored.
 */
import * as tf from '@tensorflow/tfjs';
import { Schedule } from '../schedule/schedule';
import { Denoiser, SamplerName, SAMPLER_NAMES } from './types';
import { DdpmOptions, sampleDdpm } from './ddpm';
import { DdimOptions, sampleDdim } from './ddim';
import { DpmSolverPPOptions, sampleDpmSolverPP } from './dpmSolverPP';

export interface SamplerOptionsByName {
  ddpm: DdpmOptions;
  ddim: DdimOptions;
  'dpm-solver++': DpmSolverPPOptions;
}

/** Options only one sampler understands. */
const OWN_OPTIONS: Readonly<Record<SamplerName, readonly string[]>> = {
  ddpm: ['variance'],
  ddim: ['eta'],
  'dpm-solver++': ['lowerOrderFinal'],
};

/** Runs the sampler `name`; see sampleDdpm / sampleDdim / sampleDpmSolverPP. */
export async function sample<N extends SamplerName>(
  name: N,
  denoise: Denoiser,
  shape: readonly number[],
  schedule: Schedule,
  opts: SamplerOptionsByName[N],
): Promise<tf.Tensor> {
  if (!SAMPLER_NAMES.includes(name)) throw new Error(`sample: sampler must be one of ${SAMPLER_NAMES.join(', ')}, got '${String(name)}'`);
  for (const other of SAMPLER_NAMES) {
    if (other === name) continue;
    for (const key of OWN_OPTIONS[other]) {
      if ((opts as object as Record<string, unknown>)[key] !== undefined) {
        throw new Error(`sample: option '${key}' belongs to sampler '${other}', not '${name}'`);
      }
    }
  }
  switch (name) {
    case 'ddpm':
      return sampleDdpm(denoise, shape, schedule, opts);
    case 'ddim':
      return sampleDdim(denoise, shape, schedule, opts);
    case 'dpm-solver++':
      return sampleDpmSolverPP(denoise, shape, schedule, opts);
    default:
      throw new Error(`sample: unknown sampler '${String(name)}'`);
  }
}
