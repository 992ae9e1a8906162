/**
 * Which timesteps a sampler visits, as diffusers' `timestep_spacing`
 * (Lin et al. 2024, Table 2), for T training steps and S sampling steps:
 *
 *   linspace  round(linspace(0, T - 1, S)), reversed
 *   leading   (0..S-1) * floor(T / S), reversed (diffusers with steps_offset = 0);
 *             does not start at T - 1, e.g. T=1000, S=50: 980, 960, ..., 0
 *   trailing  round(arange(T, 0, -T / S)) - 1: starts at T - 1, e.g. 999, 979, ..., 19
 *
 * Rounding is half-to-even, as numpy's. The result is strictly decreasing.
 * After the last timestep the samplers step to abar = 1, i.e. they return x0
 * (guided-diffusion; diffusers' DDIM with set_alpha_to_one = true).
 */
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['leading', 'trailing', 'linspace'];

/** numpy.round: half to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** S decreasing timesteps in [0, T). */
export function samplingTimesteps(trainTimesteps: number, steps: number, spacing: TimestepSpacing): Int32Array {
  const T = trainTimesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > T) {
    throw new Error(`samplingTimesteps: steps must be an integer in [1, T=${T}], got ${steps}`);
  }
  const out = new Int32Array(steps);
  switch (spacing) {
    case 'linspace': {
      // numpy: i * step + start, endpoint set exactly.
      const step = steps === 1 ? 0 : (T - 1) / (steps - 1);
      for (let i = 0; i < steps; i++) out[steps - 1 - i] = i === steps - 1 && steps > 1 ? T - 1 : roundHalfEven(i * step);
      break;
    }
    case 'leading': {
      const ratio = Math.floor(T / steps);
      for (let i = 0; i < steps; i++) out[steps - 1 - i] = i * ratio;
      break;
    }
    case 'trailing': {
      const ratio = T / steps;
      for (let i = 0; i < steps; i++) out[i] = roundHalfEven(T - i * ratio) - 1;
      break;
    }
    default:
      throw new Error(`samplingTimesteps: spacing must be one of ${TIMESTEP_SPACINGS.join(', ')}, got '${String(spacing)}'`);
  }
  for (let i = 1; i < steps; i++) {
    if (!(out[i] < out[i - 1])) throw new Error(`samplingTimesteps: internal error, timesteps not strictly decreasing: [${out.join(', ')}]`);
  }
  return out;
}
