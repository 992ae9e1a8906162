/**
 * What every trainer does with its run folder besides the weights and the training
 * state (train/checkpoint.ts): the metrics log kept in step with the state it resumes
 * from, and the temporary files of writes a kill interrupted.
 *
 *   <run>/metrics.jsonl   one JSON object per log step: { step, loss, ... }
 *                         (clip-metrics.jsonl, prior-metrics.jsonl for those families)
 *   <run>/.<file>.tmp-*   an atomic write in progress (io/atomicWrite.ts); left behind only by a kill
 *
 * A fresh run starts an empty log. A resumed run keeps the rows up to the step its state
 * holds: rows after it were logged by steps the kill undid, and are logged again. A kill
 * in the middle of an append leaves a torn last line: it is dropped (with a warning naming
 * the file), never a reason to refuse the resume; a bad line anywhere else is an error.
 */
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomicSync } from '../io/atomicWrite';

/** The metrics log of a run: rows with their optimiser step. */
export interface MetricsLog<Row extends { readonly step: number }> {
  readonly file: string;
  /** The rows kept when the log was opened (a resumed run's earlier rows; empty for a fresh run). */
  readonly resumedRows: readonly Row[];
  /** The rows logged so far (this run and the sessions it resumed), up to `upToStep`. */
  read(upToStep?: number): Row[];
  /** Appends one row (one line). */
  append(row: Row): void;
}

/** The rows of a metrics file, up to `upToStep`; a torn last line is dropped and reported through `onWarn`. */
export function readMetricsFile<Row extends { readonly step: number }>(
  file: string, upToStep = Infinity, onWarn: (message: string) => void = () => undefined,
): Row[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const rows: Row[] = [];
  lines.forEach((line, i) => {
    if (line.trim().length === 0) return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      const last = lines.slice(i + 1).every((l) => l.trim().length === 0);
      if (last) {
        onWarn(`${file}: line ${i + 1} is torn (a kill during its write?): dropped`);
        return;
      }
      throw new Error(`${file}: line ${i + 1} is not JSON (${(e as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || typeof (row as { step?: unknown }).step !== 'number') {
      throw new Error(`${file}: line ${i + 1} has no numeric 'step'`);
    }
    rows.push(row as Row);
  });
  return rows.filter((r) => r.step <= upToStep);
}

/**
 * Opens the metrics log of a run starting at `startStep`: `resumed` keeps the rows up to it
 * (rewritten atomically without a torn line); a fresh run starts it empty.
 */
export function openMetricsLog<Row extends { readonly step: number }>(
  file: string, startStep: number, resumed: boolean, onWarn: (message: string) => void = () => undefined,
): MetricsLog<Row> {
  const kept = resumed ? readMetricsFile<Row>(file, startStep, onWarn) : [];
  writeFileAtomicSync(file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  return {
    file,
    resumedRows: kept,
    read: (upToStep = Infinity) => readMetricsFile<Row>(file, upToStep, onWarn),
    append: (row) => fs.appendFileSync(file, JSON.stringify(row) + '\n'),
  };
}

/** Temporary files of atomic writes (io/atomicWrite.ts names them `.<name>.tmp-<pid>-<ms>-<n>`). */
const TEMP_FILE = /^\..+\.tmp-\d+-\d+-\d+$/;

/**
 * Deletes the temporary files that interrupted atomic writes left in `dir` (a training
 * state is MBs; they pile up over kills). Call when a run starts or resumes, before it
 * writes anything: the folder belongs to this run. Returns the names removed.
 */
export function removeStaleTempFiles(dir: string, onLog: (line: string) => void = () => undefined): string[] {
  if (!fs.existsSync(dir)) return [];
  const stale = fs.readdirSync(dir).filter((f) => TEMP_FILE.test(f));
  for (const f of stale) fs.rmSync(path.join(dir, f), { force: true });
  if (stale.length > 0) onLog(`${dir}: removed ${stale.length} temporary file(s) of interrupted writes (${stale.join(', ')})`);
  return stale;
}
