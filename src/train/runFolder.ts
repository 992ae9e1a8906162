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
import type { MetricsLog, RunFiles, RunStartOptions } from './runStore';
export type { MetricsLog, ResumeMode, RunFiles, RunStartOptions } from './runStore';

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

// ---------------------------------------------------------------- starting a run

const exists = (dir: string, f: string): boolean => fs.existsSync(path.join(dir, f));

/**
 * Decides whether a run resumes and refuses what would lose a run: a new run in a folder
 * holding one (its state or weights) unless `overwrite`, a resume with no state to resume
 * from. Logs of a run that never reached a checkpoint are no run: a new run replaces them.
 * Reads only, so a recipe calls it before its own work. Returns true when the run resumes
 * from `files.state`. The errors name the folder and the flags that say what to do.
 */
export function decideRunStart(outDir: string, files: RunFiles, options: RunStartOptions): boolean {
  const overwrite = options.overwrite ?? false;
  if (overwrite && options.resume === true) throw new Error(`${outDir}: --resume and --overwrite contradict each other (continue the run, or start it over)`);
  const hasState = exists(outDir, files.state);
  const hasWeights = exists(outDir, files.weights);
  if (hasState && options.resume !== false && !overwrite) return true;
  if (options.resume === true) {
    throw new Error(hasWeights
      ? `${outDir} holds ${files.weights} but no ${files.state} to resume from (a kill during the first state write?): pass --overwrite instead of --resume to start the run over`
      : `${outDir}: no ${files.state} to resume from (is the output path right?); drop --resume to start a new run there`);
  }
  if (overwrite || (!hasState && !hasWeights)) return false;
  const held = [files.state, files.weights, ...files.logs].filter((f) => exists(outDir, f));
  throw new Error(hasState
    ? `${outDir} holds a run (${held.join(', ')}): pass --resume to continue it, or --overwrite to start over (its files are replaced)`
    : `${outDir} holds ${held.join(', ')} but no ${files.state} to resume from (a kill during the first state write?): pass --overwrite to start the run over`);
}

/**
 * decideRunStart; then, for a run that starts over, deletes what the earlier one left (with
 * `overwrite`: its state, weights, logs and sample folders; else only the logs of a run that
 * never reached a checkpoint), so the folder never mixes two runs. Returns true to resume.
 */
export function startRun(outDir: string, files: RunFiles, options: RunStartOptions, onLog: (line: string) => void = () => undefined): boolean {
  const resume = decideRunStart(outDir, files, options);
  if (resume) return true;
  const overwrite = options.overwrite ?? false;
  const removed = [...(overwrite ? [files.state, files.weights] : []), ...files.logs, ...(overwrite ? files.dirs ?? [] : [])].filter((f) => exists(outDir, f));
  for (const f of removed) fs.rmSync(path.join(outDir, f), { recursive: true, force: true });
  if (removed.length > 0) {
    onLog(overwrite ? `${outDir}: --overwrite: removed the earlier run's ${removed.join(', ')}`
      : `${outDir}: replacing ${removed.join(', ')} of a run that never reached a checkpoint`);
  }
  return false;
}
