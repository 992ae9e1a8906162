/**
 * Training progress line: step/total, steps per second, loss, ETA.
 *
 *   step 1200/10000 (12.0%) | 3.41 it/s | loss 0.04123 | lr 0.0001 | ETA 43m01s
 *
 * Speed is an exponential moving average of seconds per step, weighted by the
 * number of steps between updates so it does not depend on how often
 * `update` is called:
 *   secPerStep <- a * secPerStep + (1 - a) * dt / dSteps,   a = smoothing^dSteps
 * (the first measurement initialises it). steps/s = 1 / secPerStep and
 * ETA = (total - step) * secPerStep.
 *
 * Output goes through `onLine(text)`, text to be written verbatim, e.g.
 * `(s) => process.stdout.write(s)`:
 * - isTTY: every update rewrites one line ('\r' + line, padded over the previous
 *   one, no newline); `done()` ends it with a newline.
 * - otherwise: the first update, then at most one line every `everySeconds`,
 *   then the final line from `done()`; each line ends with '\n'.
 */

export interface ProgressOptions {
  /** Step count at which training ends. */
  readonly total: number;
  /** Step at which this run starts (resume), default 0. */
  readonly startStep?: number;
  /** Receives text to write verbatim. */
  readonly onLine: (s: string) => void;
  /** Rewrite one line with '\r' (default false: plain lines). */
  readonly isTTY?: boolean;
  /** Minimum seconds between plain lines when not a TTY (default 10). */
  readonly everySeconds?: number;
  /** Per-step EMA factor of the speed estimate (default 0.95, ~20-step memory). */
  readonly smoothing?: number;
  /** Clock in milliseconds (default performance.now); injectable for tests. */
  readonly now?: () => number;
  /**
   * Seconds until a time limit ends the run (a time budget or a deadline), or null without one: the ETA is
   * then the sooner of the two ends.
   */
  readonly secondsLeft?: () => number | null;
}

export interface ProgressUpdate {
  readonly loss?: number;
  readonly extra?: Record<string, number | string>;
}

/** 4 significant digits; exponent form for very small or large magnitudes. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** Seconds as 12s, 4m18s or 2h05m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export class ProgressReporter {
  private readonly total: number;
  private readonly startStep: number;
  private readonly onLine: (s: string) => void;
  private readonly isTTY: boolean;
  private readonly everySeconds: number;
  private readonly smoothing: number;
  private readonly now: () => number;
  private readonly secondsLeft: (() => number | null) | undefined;
  private readonly startTime: number;
  private lastStep: number;
  private lastTime: number;
  private step: number;
  private secPerStep: number | null = null;
  private loss: number | null = null;
  private extra: Record<string, number | string> = {};
  private lastPrint: number | null = null;
  private lastLength = 0;
  private finished = false;

  constructor(options: ProgressOptions) {
    const { total, startStep = 0, onLine, isTTY = false, everySeconds = 10, smoothing = 0.95 } = options;
    if (!Number.isInteger(total) || total < 0) throw new Error(`ProgressReporter: total must be a non-negative integer, received ${total}`);
    if (!Number.isInteger(startStep) || startStep < 0) throw new Error(`ProgressReporter: startStep must be a non-negative integer, received ${startStep}`);
    if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`ProgressReporter: smoothing must be in [0, 1), received ${smoothing}`);
    if (!(everySeconds >= 0)) throw new Error(`ProgressReporter: everySeconds must be >= 0, received ${everySeconds}`);
    this.total = total;
    this.startStep = startStep;
    this.onLine = onLine;
    this.isTTY = isTTY;
    this.everySeconds = everySeconds;
    this.smoothing = smoothing;
    this.secondsLeft = options.secondsLeft;
    this.now = options.now ?? (() => performance.now());
    this.startTime = this.now();
    this.lastTime = this.startTime;
    this.lastStep = startStep;
    this.step = startStep;
  }

  /** Smoothed steps per second, or null before two distinct timed steps. */
  get stepsPerSecond(): number | null {
    return this.secPerStep === null || this.secPerStep <= 0 ? null : 1 / this.secPerStep;
  }

  /** Estimated seconds to reach `total` (or the time limit, if sooner), or null while neither is known. */
  get etaSeconds(): number | null {
    const bySteps = this.secPerStep === null ? null : Math.max(0, this.total - this.step) * this.secPerStep;
    const left = this.secondsLeft?.() ?? null;
    if (left === null) return bySteps;
    return bySteps === null ? Math.max(0, left) : Math.min(bySteps, Math.max(0, left));
  }

  /** Records that `step` steps are done (absolute step number), with optional loss and extra fields. */
  update(step: number, info: ProgressUpdate = {}): void {
    const t = this.now();
    const dSteps = step - this.lastStep;
    const dt = (t - this.lastTime) / 1000;
    if (dSteps > 0 && dt > 0) {
      const sample = dt / dSteps;
      const a = Math.pow(this.smoothing, dSteps);
      this.secPerStep = this.secPerStep === null ? sample : a * this.secPerStep + (1 - a) * sample;
      this.lastStep = step;
      this.lastTime = t;
    }
    this.step = step;
    if (info.loss !== undefined) this.loss = info.loss;
    if (info.extra !== undefined) this.extra = { ...this.extra, ...info.extra };

    if (this.isTTY) {
      this.emitTTY(this.line());
    } else if (this.lastPrint === null || (t - this.lastPrint) / 1000 >= this.everySeconds) {
      this.lastPrint = t;
      this.onLine(this.line() + '\n');
    }
  }

  /** Writes the final line (average speed over the run, elapsed time); later calls do nothing. */
  done(): void {
    if (this.finished) return;
    this.finished = true;
    const elapsed = (this.now() - this.startTime) / 1000;
    const steps = this.step - this.startStep;
    const parts = [`step ${this.step}/${this.total}`];
    if (elapsed > 0 && steps > 0) parts.push(`${formatNumber(steps / elapsed)} it/s avg`);
    if (this.loss !== null) parts.push(`loss ${formatNumber(this.loss)}`);
    parts.push(`done in ${formatDuration(elapsed)}`);
    const text = parts.join(' | ');
    if (this.isTTY) this.emitTTY(text);
    this.onLine(this.isTTY ? '\n' : text + '\n');
  }

  /** The current status line (no '\r' or newline). */
  line(): string {
    const pct = this.total > 0 ? ` (${((100 * this.step) / this.total).toFixed(1)}%)` : '';
    const parts = [`step ${this.step}/${this.total}${pct}`];
    const sps = this.stepsPerSecond;
    parts.push(sps === null ? '- it/s' : `${formatNumber(sps)} it/s`);
    if (this.loss !== null) parts.push(`loss ${formatNumber(this.loss)}`);
    for (const [k, v] of Object.entries(this.extra)) parts.push(`${k} ${typeof v === 'number' ? formatNumber(v) : v}`);
    const eta = this.etaSeconds;
    parts.push(`ETA ${eta === null ? '?' : formatDuration(eta)}`);
    return parts.join(' | ');
  }

  private emitTTY(text: string): void {
    const pad = Math.max(0, this.lastLength - text.length);
    this.lastLength = text.length;
    this.onLine('\r' + text + ' '.repeat(pad));
  }
}

/**
 * Lets the event loop turn once (signal handlers, timers, I/O callbacks). A
 * training loop that awaits only already-resolved promises (wasm reads) never
 * yields to it, so a Ctrl-C handler would not run until the next checkpoint's
 * file writes; the trainers call this at every log step.
 */
export function yieldToEventLoop(): Promise<void> {
  // A timer, not setImmediate: the wait then spans a whole loop iteration (timers, I/O and signal polling, checks),
  // so earlier-due timers and pending signals have run when it resolves. About 1 ms per call.
  return new Promise<void>((resolve) => setTimeout(resolve, 0));
}
