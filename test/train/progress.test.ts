import { ProgressReporter, formatDuration, formatNumber } from '../../src/train/progress';

/** A fake millisecond clock. */
function fakeClock(): { now: () => number; advance: (seconds: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (s: number) => { t += s * 1000; } };
}

describe('ProgressReporter', () => {
  it('computes steps/s and ETA at a constant rate', () => {
    const clock = fakeClock();
    const lines: string[] = [];
    const p = new ProgressReporter({ total: 100, onLine: (s) => lines.push(s), now: clock.now });
    expect(p.stepsPerSecond).toBeNull();
    expect(p.etaSeconds).toBeNull();
    clock.advance(5);
    p.update(10, { loss: 0.123456 }); // 0.5 s/step
    expect(p.stepsPerSecond).toBeCloseTo(2, 12);
    expect(p.etaSeconds).toBeCloseTo(90 * 0.5, 12);
    clock.advance(5);
    p.update(20);
    expect(p.stepsPerSecond).toBeCloseTo(2, 12);
    expect(p.etaSeconds).toBeCloseTo(40, 12);
    expect(lines[0]).toBe('step 10/100 (10.0%) | 2 it/s | loss 0.1235 | ETA 45s\n');
  });

  it('takes the sooner of the step ETA and a time limit (secondsLeft), never below 0', () => {
    const clock = fakeClock();
    let left: number | null = 30;
    const p = new ProgressReporter({ total: 1_000_000, onLine: () => undefined, now: clock.now, secondsLeft: () => left });
    expect(p.etaSeconds).toBe(30); // speed unknown: the limit alone
    clock.advance(5);
    p.update(10); // 0.5 s/step: 499,995 s by steps
    expect(p.etaSeconds).toBe(30);
    left = -4;
    expect(p.etaSeconds).toBe(0);
    left = null;
    expect(p.etaSeconds).toBeCloseTo((1_000_000 - 10) * 0.5, 6);
    const near = new ProgressReporter({ total: 20, onLine: () => undefined, now: clock.now, secondsLeft: () => 1000 });
    clock.advance(5);
    near.update(10);
    expect(near.etaSeconds).toBeCloseTo(5, 12); // steps end first
  });

  it('smooths seconds per step with an EMA weighted by the steps between updates', () => {
    const clock = fakeClock();
    const p = new ProgressReporter({ total: 1000, onLine: () => undefined, now: clock.now, smoothing: 0.9 });
    clock.advance(5);
    p.update(10); // 0.5 s/step, first sample initialises
    clock.advance(2.5);
    p.update(20); // 10 steps at 0.25 s/step
    const a = Math.pow(0.9, 10);
    const secPerStep = a * 0.5 + (1 - a) * 0.25; // = 0.34717...
    expect(p.stepsPerSecond).toBeCloseTo(1 / secPerStep, 10);
    expect(p.etaSeconds).toBeCloseTo(980 * secPerStep, 8);
    // One update of 10 steps equals ten updates of 1 step at the same speed.
    const c2 = fakeClock();
    const q = new ProgressReporter({ total: 1000, onLine: () => undefined, now: c2.now, smoothing: 0.9 });
    c2.advance(5);
    q.update(10);
    for (let s = 11; s <= 20; s++) {
      c2.advance(0.25);
      q.update(s);
    }
    expect(q.stepsPerSecond).toBeCloseTo(1 / secPerStep, 10);
  });

  it('counts from startStep when resuming and ignores updates with no elapsed time', () => {
    const clock = fakeClock();
    const p = new ProgressReporter({ total: 200, startStep: 100, onLine: () => undefined, now: clock.now });
    p.update(100);
    expect(p.stepsPerSecond).toBeNull();
    clock.advance(10);
    p.update(150); // 50 steps in 10 s
    expect(p.stepsPerSecond).toBeCloseTo(5, 12);
    expect(p.etaSeconds).toBeCloseTo(10, 12);
    expect(p.line()).toBe('step 150/200 (75.0%) | 5 it/s | ETA 10s');
  });

  it('prints plain lines at most every everySeconds when not a TTY', () => {
    const clock = fakeClock();
    const lines: string[] = [];
    const p = new ProgressReporter({ total: 100, onLine: (s) => lines.push(s), now: clock.now, everySeconds: 10 });
    for (let s = 1; s <= 35; s++) {
      clock.advance(1);
      p.update(s, { loss: 1 / s, extra: { lr: 1e-4 } });
    }
    // Lines at t = 1 (first update), 11, 21, 31 s.
    expect(lines.map((l) => l.split(' (')[0])).toEqual(['step 1/100', 'step 11/100', 'step 21/100', 'step 31/100']);
    expect(lines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    expect(lines[1]).toBe('step 11/100 (11.0%) | 1 it/s | loss 0.09091 | lr 1.00e-4 | ETA 1m29s\n');
    p.done();
    p.done();
    expect(lines).toHaveLength(5);
    expect(lines[4]).toBe('step 35/100 | 1 it/s avg | loss 0.02857 | done in 35s\n');
  });

  it('rewrites one line with \\r on a TTY, padding over longer previous text', () => {
    const clock = fakeClock();
    const out: string[] = [];
    const p = new ProgressReporter({ total: 10, onLine: (s) => out.push(s), now: clock.now, isTTY: true });
    clock.advance(1);
    p.update(1, { extra: { note: 'a long note' } });
    clock.advance(1);
    p.update(2, { extra: { note: 'x' } });
    expect(out).toHaveLength(2);
    expect(out.every((s) => s.startsWith('\r') && !s.includes('\n'))).toBe(true);
    expect(out[1].length).toBe(out[0].length); // shorter text padded with spaces
    p.done();
    expect(out[out.length - 1]).toBe('\n');
    expect(out.join('')).toContain('step 2/10 | 1 it/s avg | done in 2s');
  });

  it('formats numbers and durations', () => {
    expect([formatDuration(12.4), formatDuration(258), formatDuration(7500), formatDuration(NaN)]).toEqual(['12s', '4m18s', '2h05m', '?']);
    expect([formatNumber(0), formatNumber(0.123456), formatNumber(1234.5678), formatNumber(2.5e-5), formatNumber(3e7)])
      .toEqual(['0', '0.1235', '1235', '2.50e-5', '3.00e+7']);
  });
});
