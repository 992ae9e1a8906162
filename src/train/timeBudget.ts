/**
 * A wall-clock budget shared by the stages of one multi-stage training job
 * (e.g. autoencoder then latent UNet), kept across restarts.
 *
 * The record (a JSON file, written atomically) holds the seconds spent so far
 * and per stage; a restarted job reads it and continues with what is left.
 * `BudgetClock` counts time from its creation on top of the recorded seconds
 * and gives the deadline the trainers check after every step (the running
 * stage then writes its checkpoint and returns).
 */
import * as fs from 'fs';
import { writeFileAtomicSync } from '../io/atomicWrite';

/** The JSON record of a budgeted job. */
export interface BudgetRecord {
  /** What is budgeted (e.g. the design's name); a record is only resumed by the same job. */
  readonly design: string;
  readonly budgetMinutes: number;
  /** Wall seconds spent so far, all stages. */
  spentSeconds: number;
  /** Wall seconds per stage (summed over restarts). */
  stages: Record<string, number>;
  /** Set when the job's last step (e.g. writing its pipeline) is done. */
  finished: boolean;
}

/** Reads `file` (a fresh record when it does not exist); refuses a corrupt record or one of another job / budget. */
export function readBudgetRecord(file: string, design: string, budgetMinutes: number): BudgetRecord {
  if (!(Number.isFinite(budgetMinutes) && budgetMinutes > 0)) throw new Error(`time budget: budgetMinutes must be a positive number, got ${budgetMinutes}`);
  if (!fs.existsSync(file)) return { design, budgetMinutes, spentSeconds: 0, stages: {}, finished: false };
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); delete it to start the budget over`);
  }
  const r = raw as Partial<BudgetRecord> | null;
  const bad = (what: string): Error => new Error(`${file}: not a time-budget record: ${what}`);
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw bad('expected a JSON object');
  if (typeof r.design !== 'string') throw bad(`design must be a string, got ${JSON.stringify(r.design)}`);
  if (typeof r.budgetMinutes !== 'number') throw bad(`budgetMinutes must be a number, got ${JSON.stringify(r.budgetMinutes)}`);
  if (typeof r.spentSeconds !== 'number' || !Number.isFinite(r.spentSeconds) || r.spentSeconds < 0) {
    throw bad(`spentSeconds must be a number >= 0, got ${JSON.stringify(r.spentSeconds)}`);
  }
  if (typeof r.stages !== 'object' || r.stages === null || Array.isArray(r.stages)) throw bad(`stages must be an object {name: seconds}, got ${JSON.stringify(r.stages)}`);
  for (const [k, v] of Object.entries(r.stages)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(`stages.${k} must be a number >= 0, got ${JSON.stringify(v)}`);
  }
  if (typeof r.finished !== 'boolean') throw bad(`finished must be true or false, got ${JSON.stringify(r.finished)}`);
  if (r.design !== design || r.budgetMinutes !== budgetMinutes) {
    throw new Error(`${file}: written for '${r.design}' with a budget of ${r.budgetMinutes} min, resumed as '${design}' with ${budgetMinutes} min: ` +
      'a budget cannot change mid-run (use another folder, or start over)');
  }
  return { design: r.design, budgetMinutes: r.budgetMinutes, spentSeconds: r.spentSeconds, stages: { ...(r.stages as Record<string, number>) }, finished: r.finished };
}

export interface BudgetClockOptions {
  /** tick() saves the record when this many seconds have passed since the last save (default 15). */
  readonly saveEverySeconds?: number;
}

/**
 * Counts wall time against a BudgetRecord and persists it. Its `deadline` (ms since the epoch) is for the
 * trainers to check after each step (TrainDiffusionOptions.deadline): a timer would fire only when the
 * loop yields to the event loop (at its log steps; before that fix, only at checkpoints). Saving is
 * synchronous and driven by the caller for the same reason: tick() from the stages' log callbacks.
 */
export class BudgetClock {
  private readonly startedAt = Date.now();
  private readonly spentBefore: number;
  private readonly saveEveryMs: number;
  private lastSave = Date.now();
  private stoppedAt: number | null = null;
  /** The running stage: its recorded seconds when it started and the clock then. */
  private current: { name: string; base: number; since: number } | null = null;
  /** When the budget is used up (ms since the epoch). */
  readonly deadline: number;

  constructor(private readonly file: string, readonly record: BudgetRecord, options: BudgetClockOptions = {}) {
    this.spentBefore = record.spentSeconds;
    this.saveEveryMs = 1000 * (options.saveEverySeconds ?? 15);
    this.deadline = this.startedAt + Math.max(0, record.budgetMinutes * 60_000 - this.spentBefore * 1000);
  }

  /** True once the budget is used up. */
  get deadlineReached(): boolean {
    return Date.now() >= this.deadline;
  }

  /** Seconds spent: recorded before this clock plus counted since (until stop()). */
  spent(): number {
    return this.spentBefore + ((this.stoppedAt ?? Date.now()) - this.startedAt) / 1000;
  }

  /** Minutes of the budget left (negative once over). */
  leftMinutes(): number {
    return this.record.budgetMinutes - this.spent() / 60;
  }

  /**
   * Runs one stage, adding its wall time to the stage's record (an interrupted earlier run of it keeps its share).
   * Saves made while it runs already credit the time so far, so a killed process loses at most the time since the
   * last save, in the total and in the stage alike.
   */
  async stage<T>(name: string, run: () => Promise<T>): Promise<T> {
    this.current = { name, base: this.record.stages[name] ?? 0, since: this.spent() };
    try {
      return await run();
    } finally {
      this.save();
      this.current = null;
    }
  }

  /** Saves the record if saveEverySeconds have passed since the last save (cheap to call often). */
  tick(): void {
    if (Date.now() - this.lastSave >= this.saveEveryMs) this.save();
  }

  /** Writes the record (synchronously, atomically); `finished` marks the job done. */
  save(finished = false): void {
    const spent = this.spent(); // read once: the total and the stage see the same instant
    this.record.spentSeconds = spent;
    if (this.current !== null) this.record.stages[this.current.name] = this.current.base + (spent - this.current.since);
    if (finished) this.record.finished = true;
    writeFileAtomicSync(this.file, JSON.stringify(this.record, null, 2) + '\n');
    this.lastSave = Date.now();
  }

  /** Stops counting: later saves record the time spent at this call. */
  stop(): void {
    if (this.stoppedAt === null) this.stoppedAt = Date.now();
  }
}
