/**
 * A wall-clock budget shared by the stages of one multi-stage training job
 * (e.g. autoencoder then latent UNet), kept across restarts.
 *
 * The record (a JSON file, written atomically) holds the seconds spent so far
 * and per stage; a restarted job reads it and continues with what is left.
 * `BudgetClock` counts time from its creation on top of the recorded seconds,
 * saves every few seconds, and calls `onDeadline` once the budget is used (a
 * trainer's AbortSignal, typically: the running stage then writes its
 * checkpoint and returns).
 */
import * as fs from 'fs';
import { writeFileAtomic } from '../io/atomicWrite';

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
  const stagesOk = r !== null && typeof r.stages === 'object' && r.stages !== null &&
    Object.values(r.stages).every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0);
  if (r === null || typeof r !== 'object' || typeof r.design !== 'string' || typeof r.budgetMinutes !== 'number' ||
      typeof r.spentSeconds !== 'number' || !Number.isFinite(r.spentSeconds) || r.spentSeconds < 0 || !stagesOk || typeof r.finished !== 'boolean') {
    throw new Error(`${file}: not a time-budget record (needs design, budgetMinutes, spentSeconds >= 0, stages {name: seconds}, finished)`);
  }
  if (r.design !== design || r.budgetMinutes !== budgetMinutes) {
    throw new Error(`${file}: written for '${r.design}' with a budget of ${r.budgetMinutes} min, resumed as '${design}' with ${budgetMinutes} min: ` +
      'a budget cannot change mid-run (use another folder, or start over)');
  }
  return { design: r.design, budgetMinutes: r.budgetMinutes, spentSeconds: r.spentSeconds, stages: { ...r.stages }, finished: r.finished };
}

export interface BudgetClockOptions {
  /** Called once when the recorded plus the counted time reaches the budget. */
  readonly onDeadline: () => void;
  /** Save the record every N seconds while running (default 15). */
  readonly saveEverySeconds?: number;
}

/** Counts wall time against a BudgetRecord, persists it, and calls onDeadline when the budget is used. Call stop() when done. */
export class BudgetClock {
  private readonly startedAt = Date.now();
  private readonly spentBefore: number;
  private readonly timer: NodeJS.Timeout;
  private readonly deadline: NodeJS.Timeout;
  private reached = false;
  private stoppedAt: number | null = null;

  constructor(private readonly file: string, readonly record: BudgetRecord, options: BudgetClockOptions) {
    this.spentBefore = record.spentSeconds;
    this.timer = setInterval(() => void this.save().catch(() => undefined), 1000 * (options.saveEverySeconds ?? 15));
    const leftMs = Math.max(0, record.budgetMinutes * 60_000 - this.spentBefore * 1000);
    this.deadline = setTimeout(() => {
      this.reached = true;
      options.onDeadline();
    }, leftMs);
  }

  /** True once onDeadline has been called. */
  get deadlineReached(): boolean {
    return this.reached;
  }

  /** Seconds spent: recorded before this clock plus counted since. */
  spent(): number {
    return this.spentBefore + ((this.stoppedAt ?? Date.now()) - this.startedAt) / 1000;
  }

  /** Minutes of the budget left (negative once over). */
  leftMinutes(): number {
    return this.record.budgetMinutes - this.spent() / 60;
  }

  /** Runs one stage, adding its wall time to the stage's record (an interrupted earlier run of it keeps its share). */
  async stage<T>(name: string, run: () => Promise<T>): Promise<T> {
    const before = this.spent();
    try {
      return await run();
    } finally {
      this.record.stages[name] = (this.record.stages[name] ?? 0) + (this.spent() - before);
      await this.save();
    }
  }

  /** Writes the record (atomically); `finished` marks the job done. */
  async save(finished = false): Promise<void> {
    this.record.spentSeconds = this.spent();
    if (finished) this.record.finished = true;
    await writeFileAtomic(this.file, JSON.stringify(this.record, null, 2) + '\n');
  }

  /** Stops counting (later saves record the time at this call), the periodic save and the deadline timer. */
  stop(): void {
    if (this.stoppedAt === null) this.stoppedAt = Date.now();
    clearInterval(this.timer);
    clearTimeout(this.deadline);
  }
}
