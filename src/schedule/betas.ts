/**
 * Noise schedules: the discrete betas beta_0..beta_{T-1} of the forward process
 * q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I), computed in float64.
 *
 *   linear         DDPM (Ho et al. 2020, sec. 4): beta linear from 1e-4 to 0.02 (T = 1000).
 *   scaled-linear  Stable Diffusion (Rombach et al. 2022): sqrt(beta) linear from
 *                  sqrt(0.00085) to sqrt(0.012), then squared (T = 1000).
 *   cosine         Nichol & Dhariwal 2021, eq. 17: abar(t) = f(t) / f(0) with
 *                  f(t) = cos(((t / T + s) / (1 + s)) * pi / 2)^2, s = 0.008;
 *                  beta_t = 1 - abar(t + 1) / abar(t), clipped at 0.999.
 *   sigmoid        Chen 2023, "On the importance of noise scheduling for diffusion
 *                  models", Algorithm 1 (the schedule of Jabri et al. 2023, RIN):
 *                  gamma(t) = (v(end) - v(t (end - start) + start)) / (v(end) - v(start)),
 *                  v(u) = sigmoid(u / tau), with start = -3, end = 3, tau = 1 and
 *                  gamma clipped below at 1e-9; gamma is abar on continuous t in [0, 1],
 *                  discretised like the cosine schedule: beta_t = 1 - gamma((t + 1) / T) / gamma(t / T),
 *                  clipped at 0.999. (Not diffusers' "sigmoid" betas, which are a
 *                  sigmoid of linspace(-6, 6) between betaStart and betaEnd.)
 *
 * Zero terminal SNR (Lin et al. 2024, "Common diffusion noise schedules and sample
 * steps are flawed", Algorithm 1): shift and scale sqrt(abar) so that
 * sqrt(abar_{T-1}) = 0 while sqrt(abar_0) is unchanged; then beta_{T-1} = 1.
 * At that last step the SNR is 0, x_{T-1} is pure noise, and x0 cannot be
 * recovered from an epsilon prediction (x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)
 * is 0/0): train and sample with 'v' or 'x0' prediction. The samplers refuse
 * 'epsilon' with a timestep whose abar is 0.
 */

export type ScheduleKind = 'linear' | 'scaled-linear' | 'cosine' | 'sigmoid';
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['linear', 'scaled-linear', 'cosine', 'sigmoid'];

export interface ScheduleConfig {
  /** Which beta schedule (see the file header). */
  readonly kind: ScheduleKind;
  /** Number of diffusion steps T; timesteps are 0..T-1. */
  readonly timesteps: number;
  /**
   * First beta (linear, scaled-linear only). Default: the kind's published T = 1000
   * value (LINEAR_BETA_RANGES) times 1000 / T, as guided-diffusion's
   * get_named_beta_schedule: every beta scales by 1000 / T, so sum(beta), and with
   * it abar_{T-1}, stays about the same for any T. Given explicitly, used as is.
   */
  readonly betaStart?: number;
  /** Last beta (linear, scaled-linear only). Default: as betaStart. */
  readonly betaEnd?: number;
  /** Rescale to zero terminal SNR (Lin et al. Algorithm 1). */
  readonly rescaleZeroTerminalSnr?: boolean;
}

export const SCHEDULE_DEFAULTS = {
  /** DDPM's schedule. */
  kind: 'linear',
  /** DDPM and Stable Diffusion train with T = 1000. */
  timesteps: 1000,
  // betaStart / betaEnd: depend on kind and T, see ScheduleConfig.betaStart.
  /** Off: the published schedules do not reach SNR 0. */
  rescaleZeroTerminalSnr: false,
} as const satisfies ScheduleConfig;

/** Published [betaStart, betaEnd] at T = 1000. */
export const LINEAR_BETA_RANGES = {
  linear: [1e-4, 0.02],
  'scaled-linear': [0.00085, 0.012],
} as const satisfies Record<'linear' | 'scaled-linear', readonly [number, number]>;

/** Cosine offset s (Nichol & Dhariwal): keeps beta_0 from being vanishingly small. */
export const COSINE_S = 0.008;
/** Betas of cosine and sigmoid are clipped here to avoid singularities near t = T (Nichol & Dhariwal). */
export const MAX_BETA = 0.999;
/** Sigmoid schedule constants (Chen 2023 Algorithm 1 with the defaults used there and by RIN). */
export const SIGMOID_START = -3;
export const SIGMOID_END = 3;
export const SIGMOID_TAU = 1;
export const SIGMOID_CLIP_MIN = 1e-9;

/**
 * The most diffusion steps a schedule may have: 100x the usual 1000, and a bound on the tables
 * (a handful of float64 arrays of T) that a corrupt checkpoint or a typo cannot push to gigabytes.
 */
export const MAX_TIMESTEPS = 100_000;

/** Merges `partial` over the defaults, fills the beta range of linear kinds, and validates. */
export function scheduleConfig(partial: Partial<ScheduleConfig> = {}): ScheduleConfig {
  const kind = partial.kind ?? SCHEDULE_DEFAULTS.kind;
  const timesteps = partial.timesteps ?? SCHEDULE_DEFAULTS.timesteps;
  const rescaleZeroTerminalSnr = partial.rescaleZeroTerminalSnr ?? SCHEDULE_DEFAULTS.rescaleZeroTerminalSnr;
  if (!(SCHEDULE_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`scheduleConfig: kind must be one of ${SCHEDULE_KINDS.join(', ')}, got '${String(kind)}'`);
  }
  if (!Number.isInteger(timesteps) || timesteps < 1 || timesteps > MAX_TIMESTEPS) {
    throw new Error(`scheduleConfig: timesteps must be an integer in [1, ${MAX_TIMESTEPS}], got ${timesteps}`);
  }
  if (rescaleZeroTerminalSnr && timesteps < 2) {
    throw new Error(`scheduleConfig: rescaleZeroTerminalSnr needs timesteps >= 2, got ${timesteps}`);
  }
  if (kind === 'cosine' || kind === 'sigmoid') {
    if (partial.betaStart !== undefined || partial.betaEnd !== undefined) {
      throw new Error(
        `scheduleConfig: betaStart/betaEnd apply to 'linear' and 'scaled-linear' only; kind '${kind}' derives its betas from abar(t) ` +
          `(received betaStart=${partial.betaStart}, betaEnd=${partial.betaEnd})`,
      );
    }
    return { kind, timesteps, rescaleZeroTerminalSnr };
  }
  const scale = 1000 / timesteps;
  const betaStart = partial.betaStart ?? LINEAR_BETA_RANGES[kind][0] * scale;
  const betaEnd = partial.betaEnd ?? LINEAR_BETA_RANGES[kind][1] * scale;
  if (!(betaStart > 0 && betaStart <= betaEnd && betaEnd < 1)) {
    const why = partial.betaEnd === undefined && partial.betaStart === undefined ? ` (defaults scaled by 1000/T = ${scale}; pass betaStart/betaEnd for small T)` : '';
    throw new Error(`scheduleConfig: need 0 < betaStart <= betaEnd < 1, got betaStart=${betaStart}, betaEnd=${betaEnd}${why}`);
  }
  return { kind, timesteps, betaStart, betaEnd, rescaleZeroTerminalSnr };
}

// helpers

/** numpy.linspace(start, end, n) in float64 (endpoint included). */
function linspace(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  out[n - 1] = end;
  return out;
}

/** guided-diffusion's betas_for_alpha_bar: beta_i = min(1 - abar((i+1)/T) / abar(i/T), MAX_BETA). */
function betasForAlphaBar(timesteps: number, alphaBar: (t: number) => number): Float64Array {
  const betas = new Float64Array(timesteps);
  for (let i = 0; i < timesteps; i++) {
    betas[i] = Math.min(1 - alphaBar((i + 1) / timesteps) / alphaBar(i / timesteps), MAX_BETA);
  }
  return betas;
}

function sigmoid(u: number): number {
  return 1 / (1 + Math.exp(-u));
}

/** Chen 2023 Algorithm 1 sigmoid gamma(t), t in [0, 1]: abar on continuous time, gamma(0) = 1. */
export function sigmoidGamma(t: number): number {
  const vStart = sigmoid(SIGMOID_START / SIGMOID_TAU);
  const vEnd = sigmoid(SIGMOID_END / SIGMOID_TAU);
  const out = (vEnd - sigmoid((t * (SIGMOID_END - SIGMOID_START) + SIGMOID_START) / SIGMOID_TAU)) / (vEnd - vStart);
  return Math.min(1, Math.max(SIGMOID_CLIP_MIN, out));
}

/** Nichol & Dhariwal eq. 17 numerator f(t), t = step / T in [0, 1]. */
export function cosineF(t: number): number {
  return Math.cos(((t + COSINE_S) / (1 + COSINE_S)) * (Math.PI / 2)) ** 2;
}

// the betas

/**
 * Lin et al. 2024, Algorithm 1: rescale betas so that abar_{T-1} = 0 exactly and
 * abar_0 is unchanged (up to rounding). Returns new betas; beta_{T-1} = 1.
 */
export function rescaleZeroTerminalSnr(betas: ArrayLike<number>): Float64Array {
  const T = betas.length;
  if (T < 2) throw new Error(`rescaleZeroTerminalSnr: need at least 2 betas, got ${T}`);
  const sqrtAbar = new Float64Array(T);
  let abar = 1;
  for (let i = 0; i < T; i++) {
    abar *= 1 - betas[i];
    sqrtAbar[i] = Math.sqrt(abar);
  }
  const first = sqrtAbar[0];
  const last = sqrtAbar[T - 1];
  if (!(first > last)) throw new Error(`rescaleZeroTerminalSnr: sqrt(abar) must decrease, got sqrt(abar_0)=${first}, sqrt(abar_T-1)=${last}`);
  // Shift so the last is 0, scale so the first is unchanged.
  for (let i = 0; i < T; i++) sqrtAbar[i] = ((sqrtAbar[i] - last) * first) / (first - last);
  const out = new Float64Array(T);
  out[0] = 1 - sqrtAbar[0] ** 2;
  for (let i = 1; i < T; i++) out[i] = 1 - sqrtAbar[i] ** 2 / sqrtAbar[i - 1] ** 2;
  return out;
}

/** The betas of a (validated) config, float64, length T, rescaled if the config says so. */
export function makeBetas(cfg: ScheduleConfig): Float64Array {
  const T = cfg.timesteps;
  let betas: Float64Array;
  switch (cfg.kind) {
    case 'linear':
    case 'scaled-linear': {
      if (cfg.betaStart === undefined || cfg.betaEnd === undefined) {
        throw new Error(`makeBetas: kind '${cfg.kind}' needs betaStart and betaEnd; build the config with scheduleConfig()`);
      }
      if (cfg.kind === 'linear') {
        betas = linspace(cfg.betaStart, cfg.betaEnd, T);
      } else {
        betas = linspace(Math.sqrt(cfg.betaStart), Math.sqrt(cfg.betaEnd), T).map((r) => r * r);
      }
      break;
    }
    case 'cosine':
      betas = betasForAlphaBar(T, cosineF);
      break;
    case 'sigmoid':
      betas = betasForAlphaBar(T, sigmoidGamma);
      break;
  }
  return cfg.rescaleZeroTerminalSnr ? rescaleZeroTerminalSnr(betas) : betas;
}
