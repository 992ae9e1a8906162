/**
 * Betas against numbers from numpy and against the closed forms evaluated here.
 *
 * Reference script (numpy 2.x, float64), output quoted in REF below:
 *   import numpy as np, math
 *   def cos_betas(T, s=0.008):
 *       f = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
 *       return np.array([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)])
 *   def sig_betas(T, start=-3, end=3, tau=1.0):
 *       sg = lambda x: 1 / (1 + np.exp(-x)); vs, ve = sg(start / tau), sg(end / tau)
 *       g = lambda t: np.clip((ve - sg((t * (end - start) + start) / tau)) / (ve - vs), 1e-9, 1.0)
 *       return np.array([min(1 - g((i + 1) / T) / g(i / T), 0.999) for i in range(T)])
 *   lin = np.linspace(1e-4, 0.02, 1000); sl = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
 *   for name, b in [('linear', lin), ('scaled-linear', sl), ('cosine', cos_betas(1000)), ('sigmoid', sig_betas(1000))]:
 *       ac = np.cumprod(1 - b); print(name, b[0], b[500], b[999], ac[0], ac[499], ac[999])
 *   a = np.sqrt(np.cumprod(1 - sl)); a0, aT = a[0], a[-1]; a = (a - aT) * a0 / (a0 - aT); ab = a ** 2
 *   print('rescaled', ab[0], ab[499], ab[998], ab[999])
 */
import { makeBetas, rescaleZeroTerminalSnr, scheduleConfig, SCHEDULE_DEFAULTS, ScheduleKind } from '../../src/schedule/betas';

const REF: Record<ScheduleKind, { b0: number; b500: number; b999: number; ac0: number; ac499: number; ac999: number }> = {
  linear: { b0: 0.0001, b500: 0.010059959959959959, b999: 0.02, ac0: 0.9999, ac499: 0.07858724288177824, ac999: 4.035829765375676e-5 },
  'scaled-linear': { b0: 0.00085, b500: 0.00481495414171188, b999: 0.012, ac0: 0.99915, ac499: 0.27766965045646763, ac999: 0.004660098513077238 },
  cosine: { b0: 4.128422482196914e-5, b500: 0.003155691441585007, b999: 0.999, ac0: 0.999958715775178, ac499: 0.4938435904406382, ac999: 2.4287669070348567e-9 },
  sigmoid: { b0: 0.00030027919974917605, b500: 0.003314364235860956, b999: 0.999, ac0: 0.9996997208002508, ac499: 0.5000000000000001, ac999: 3.0027919974932843e-7 },
};

function cumprod(b: ArrayLike<number>): number[] {
  const out: number[] = [];
  let acc = 1;
  for (let i = 0; i < b.length; i++) out.push((acc *= 1 - b[i]));
  return out;
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

describe('betas', () => {
  it.each(Object.keys(REF) as ScheduleKind[])('%s matches numpy at T=1000', (kind) => {
    const b = makeBetas(scheduleConfig({ kind }));
    const ac = cumprod(b);
    const r = REF[kind];
    expect(b.length).toBe(1000);
    expect(rel(b[0], r.b0)).toBeLessThan(1e-12);
    expect(rel(b[500], r.b500)).toBeLessThan(1e-12);
    expect(rel(b[999], r.b999)).toBeLessThan(1e-12);
    expect(rel(ac[0], r.ac0)).toBeLessThan(1e-12);
    expect(rel(ac[499], r.ac499)).toBeLessThan(1e-11);
    expect(rel(ac[999], r.ac999)).toBeLessThan(1e-9);
  });

  it('cosine abar follows f(t)/f(0) directly wherever beta is not clipped', () => {
    const T = 37;
    const s = 0.008;
    const f = (t: number): number => Math.cos(((t / T + s) / (1 + s)) * (Math.PI / 2)) ** 2;
    const b = makeBetas(scheduleConfig({ kind: 'cosine', timesteps: T }));
    const ac = cumprod(b);
    for (let t = 0; t < T - 1; t++) {
      expect(b[t]).toBeLessThan(0.999);
      expect(rel(ac[t], f(t + 1) / f(0))).toBeLessThan(1e-12);
    }
    expect(b[T - 1]).toBe(0.999); // f(T) = 0 would give beta = 1: clipped
  });

  it('sigmoid abar follows gamma(t) of Chen 2023 (start -3, end 3, tau 1) directly', () => {
    const T = 50;
    const sg = (u: number): number => 1 / (1 + Math.exp(-u));
    const gamma = (t: number): number => (sg(3) - sg(6 * t - 3)) / (sg(3) - sg(-3));
    const ac = cumprod(makeBetas(scheduleConfig({ kind: 'sigmoid', timesteps: T })));
    for (let t = 0; t < T - 1; t++) expect(rel(ac[t], gamma((t + 1) / T))).toBeLessThan(1e-11);
    expect(ac[Math.round(T / 2) - 1]).toBeCloseTo(0.5, 12); // gamma(1/2) = 1/2 by symmetry
  });

  it('scaled-linear: sqrt(beta) is linear', () => {
    const b = makeBetas(scheduleConfig({ kind: 'scaled-linear', timesteps: 100 }));
    const r = Array.from(b, Math.sqrt);
    for (let i = 1; i < 99; i++) expect(r[i + 1] - 2 * r[i] + r[i - 1]).toBeCloseTo(0, 14);
  });

  it('default beta range scales by 1000/T; explicit ranges are kept', () => {
    expect(SCHEDULE_DEFAULTS.timesteps).toBe(1000);
    const c200 = scheduleConfig({ kind: 'linear', timesteps: 200 });
    expect(c200.betaStart).toBeCloseTo(5e-4, 15);
    expect(c200.betaEnd).toBeCloseTo(0.1, 15);
    const ac = cumprod(makeBetas(c200));
    expect(ac[199]).toBeLessThan(1e-4); // terminal still ~ pure noise
    const explicit = scheduleConfig({ kind: 'linear', timesteps: 200, betaStart: 1e-4, betaEnd: 0.02 });
    expect(explicit.betaEnd).toBe(0.02);
  });

  it('validates with messages naming the problem', () => {
    expect(() => scheduleConfig({ timesteps: 0 })).toThrow(/timesteps must be an integer in \[1, 100000\], got 0/);
    expect(() => scheduleConfig({ timesteps: 10 })).toThrow(/betaEnd=2.*pass betaStart\/betaEnd/);
    expect(() => scheduleConfig({ kind: 'cosine', betaStart: 0.1 })).toThrow(/apply to 'linear' and 'scaled-linear' only/);
    expect(() => scheduleConfig({ betaStart: 0.1, betaEnd: 0.01 })).toThrow(/0 < betaStart <= betaEnd < 1/);
    expect(() => scheduleConfig({ kind: 'quadratic' as ScheduleKind })).toThrow(/kind must be one of/);
    expect(() => scheduleConfig({ timesteps: 1, rescaleZeroTerminalSnr: true, betaStart: 0.1, betaEnd: 0.1 })).toThrow(/timesteps >= 2/);
  });

  it('rescaleZeroTerminalSnr matches numpy (Lin et al. Algorithm 1)', () => {
    const b = makeBetas(scheduleConfig({ kind: 'scaled-linear', rescaleZeroTerminalSnr: true }));
    const ac = cumprod(b);
    expect(b[999]).toBe(1);
    expect(ac[999]).toBe(0);
    expect(rel(ac[0], 0.99915)).toBeLessThan(1e-14);
    expect(rel(ac[499], 0.24235916655614523)).toBeLessThan(1e-11);
    expect(rel(ac[998], 1.9678880566212916e-7)).toBeLessThan(1e-7);
    expect(() => rescaleZeroTerminalSnr([0.1])).toThrow(/at least 2/);
  });
});
