/**
 * Where a training run keeps its files: the small interface between the one loop
 * (./loop.ts) and storage. The loop never touches a file system itself; it asks its
 * store to start a run (refusing what would lose one), load and save the training
 * state and the shipped weights, append metrics rows and draw the loss plot.
 *
 *   FolderRun (./folderRun.ts, Node)  a run folder on disk, atomic writes
 *   MemoryRun (below)                 everything in memory: runs that keep no files
 *                                     (the evaluation classifier, tests) and a browser
 *                                     tab, which has no folder to write to
 *
 * A store names itself (`location`) in every message, so an error says which run.
 * This file has no Node imports.
 */
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module';
import type { PlotSeries, PlotOptions } from '../io/plot';

// ---------------------------------------------------------------- the files of a run

/**
 * How a trainer treats a run folder: true continues the run in it (its training state must
 * be there); 'if-present' continues it when it has a state and starts one in an empty folder
 * (scripts that resume when rerun); false starts a new run.
 */
export type ResumeMode = boolean | 'if-present';

/** A run's files in its folder, as the family names them. */
export interface RunFiles {
  /** The training state a resume reads, e.g. 'state.safetensors'. */
  readonly state: string;
  /** The weights a checkpoint writes, e.g. 'model.safetensors': with the state, what makes a run worth keeping. */
  readonly weights: string;
  /** Logs a run writes and a new run replaces: its metrics (the first), its loss plot. */
  readonly logs: readonly string[];
  /** Folders a run fills (sample grids, snapshots), emptied when the run starts over. */
  readonly dirs?: readonly string[];
  /** The resolved config of the run as JSON (the loop writes it at every start; also listed in logs). */
  readonly config?: string;
}

/**
 * The files of a family's run: `<prefix>state.safetensors`, the weights, `<prefix>metrics.jsonl`,
 * `<prefix>loss.png` and `<prefix>run.json` (the resolved config). Families that share a folder
 * with others take a prefix ('clip-', 'prior-'); diffusion and the autoencoder have their own.
 */
export function familyRunFiles(weights: string, prefix = '', dirs?: readonly string[]): RunFiles {
  return {
    state: `${prefix}state.safetensors`,
    weights,
    logs: [`${prefix}metrics.jsonl`, `${prefix}loss.png`, `${prefix}run.json`],
    ...(dirs !== undefined ? { dirs } : {}),
    config: `${prefix}run.json`,
  };
}

/** What every trainer and recipe takes about its run folder. */
export interface RunStartOptions {
  /** Continue the run in the folder: true (its state must exist), 'if-present', or false (a new run). */
  readonly resume: ResumeMode;
  /** Start over in a folder that holds another run: its state, weights, logs and sample folders are deleted first. Default false. */
  readonly overwrite?: boolean;
}

/** Which trainer wrote a state (metadata 'family'): a resume by another is refused (two families may share file names). */
export type TrainingFamily = 'diffusion' | 'autoencoder' | 'clip' | 'prior' | 'classifier';

export interface TrainingState {
  /** Optimiser steps taken. */
  step: number;
  /** e.g. 'model.<name>', 'ema.<name>', 'optim.m.<name>', 'optim.v.<name>': the trainer decides the keys. float32/int32 tf tensors. */
  tensors: Map<string, tf.Tensor>;
  /** RNG states, data iterator state, optimiser scalars, config, ...: JSON-safe values only. */
  json: Record<string, unknown>;
}

/**
 * The tensors of a training state stored under `prefix` (e.g. 'model.', 'ema.',
 * 'optim.'), with the prefix removed. The tensors are the state's own (not copies).
 */
export function stateTensorsWithPrefix(state: TrainingState, prefix: string): Map<string, tf.Tensor> {
  return new Map([...state.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
}

/** What the shipped weights say about themselves (io/checkpointFile.ts SaveModelOptions). */
export interface WeightsMeta {
  readonly kind: string;
  readonly config: Record<string, unknown>;
  readonly step: number;
  readonly seed: number;
  readonly command?: string;
  readonly storage?: 'float32' | 'float16';
}

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

// ---------------------------------------------------------------- the interface

export interface RunStore {
  /** The run's name in messages: its folder, or 'memory:<name>'. */
  readonly location: string;
  /**
   * Whether the run resumes (its state is there and options allow it); refuses what would
   * lose a run. Reads only: a recipe calls it before its own work.
   */
  decide(files: RunFiles, options: RunStartOptions): boolean;
  /** decide(), then clears what a run that starts over replaces. Returns true to resume. */
  start(files: RunFiles, options: RunStartOptions, onLog?: (line: string) => void): boolean;
  /** The caller owns (disposes) the returned tensors. A state another family wrote is refused. */
  loadState(file: string, family: TrainingFamily): Promise<TrainingState>;
  saveState(file: string, state: TrainingState, family: TrainingFamily): Promise<void>;
  /** The JSON part of a saved state alone (cheap checks before a resume does any work). */
  readStateJson(file: string, family?: TrainingFamily): Promise<Record<string, unknown>>;
  saveWeights(file: string, module: Module, meta: WeightsMeta): Promise<void>;
  openMetrics<Row extends { readonly step: number }>(file: string, startStep: number, resumed: boolean, onWarn?: (message: string) => void): MetricsLog<Row>;
  savePlot(file: string, series: readonly PlotSeries[], options: PlotOptions): void;
  /** Writes a small JSON file (atomically; synchronous, so the loop does not yield to timers before its first step). */
  saveJson(file: string, value: unknown): void;
  /** A file's path for a hook's own output (sample grids), or null when the store keeps no files. */
  path(file: string): string | null;
}

// ---------------------------------------------------------------- in memory

/** Copies that outlive the caller's tf.tidy and the caller's tensors. */
function cloneAll(tensors: Iterable<[string, tf.Tensor]>): Map<string, tf.Tensor> {
  return new Map([...tensors].map(([k, t]) => [k, tf.keep(t.clone())]));
}

/**
 * A run kept in memory: states and weights as tensor copies, metrics as rows, plots as
 * their series. The same rules as a folder (a new run over one is refused without
 * `overwrite`, a resume needs a state). dispose() frees the copies.
 */
export class MemoryRun implements RunStore {
  readonly location: string;
  private readonly states = new Map<string, { state: TrainingState; family: TrainingFamily }>();
  private readonly weightFiles = new Map<string, { tensors: Map<string, tf.Tensor>; meta: WeightsMeta }>();
  private readonly metricRows = new Map<string, Array<{ readonly step: number }>>();
  private readonly plots = new Map<string, readonly PlotSeries[]>();
  private readonly jsonFiles = new Map<string, string>();

  constructor(name = 'run') {
    this.location = `memory:${name}`;
  }

  private has(file: string): boolean {
    return this.states.has(file) || this.weightFiles.has(file) || this.metricRows.has(file) || this.plots.has(file) || this.jsonFiles.has(file);
  }

  decide(files: RunFiles, options: RunStartOptions): boolean {
    const overwrite = options.overwrite ?? false;
    if (overwrite && options.resume === true) throw new Error(`${this.location}: resume and overwrite contradict each other (continue the run, or start it over)`);
    const hasState = this.states.has(files.state);
    if (hasState && options.resume !== false && !overwrite) return true;
    if (options.resume === true) throw new Error(`${this.location}: no ${files.state} to resume from`);
    if (overwrite || (!hasState && !this.weightFiles.has(files.weights))) return false;
    throw new Error(`${this.location} holds a run (${[files.state, files.weights].filter((f) => this.has(f)).join(', ')}): resume it, or overwrite it`);
  }

  start(files: RunFiles, options: RunStartOptions): boolean {
    if (this.decide(files, options)) return true;
    for (const f of [files.state, files.weights, ...files.logs]) this.remove(f);
    return false;
  }

  private remove(file: string): void {
    const s = this.states.get(file);
    if (s !== undefined) tf.dispose([...s.state.tensors.values()]);
    const w = this.weightFiles.get(file);
    if (w !== undefined) tf.dispose([...w.tensors.values()]);
    this.states.delete(file);
    this.weightFiles.delete(file);
    this.metricRows.delete(file);
    this.plots.delete(file);
    this.jsonFiles.delete(file);
  }

  async loadState(file: string, family: TrainingFamily): Promise<TrainingState> {
    const s = this.states.get(file);
    if (s === undefined) throw new Error(`${this.location}: no ${file}`);
    if (s.family !== family) throw new Error(`${this.location}/${file}: the training state of a ${s.family} run, resumed by the ${family} trainer`);
    return { step: s.state.step, tensors: cloneAll(s.state.tensors), json: JSON.parse(JSON.stringify(s.state.json)) as Record<string, unknown> };
  }

  async saveState(file: string, state: TrainingState, family: TrainingFamily): Promise<void> {
    const copy = { step: state.step, tensors: cloneAll(state.tensors), json: JSON.parse(JSON.stringify(state.json)) as Record<string, unknown> };
    this.remove(file);
    this.states.set(file, { state: copy, family });
  }

  async readStateJson(file: string, family?: TrainingFamily): Promise<Record<string, unknown>> {
    const s = this.states.get(file);
    if (s === undefined) throw new Error(`${this.location}: no ${file}`);
    if (family !== undefined && s.family !== family) throw new Error(`${this.location}/${file}: the training state of a ${s.family} run, resumed by the ${family} trainer`);
    return JSON.parse(JSON.stringify(s.state.json)) as Record<string, unknown>;
  }

  async saveWeights(file: string, module: Module, meta: WeightsMeta): Promise<void> {
    const tensors = cloneAll(module.stateDict());
    this.remove(file);
    this.weightFiles.set(file, { tensors, meta });
  }

  /** The saved weights of `file` (the store's own tensors: copy what should outlive it), or null. */
  weights(file: string): { tensors: ReadonlyMap<string, tf.Tensor>; meta: WeightsMeta } | null {
    return this.weightFiles.get(file) ?? null;
  }

  openMetrics<Row extends { readonly step: number }>(file: string, startStep: number, resumed: boolean): MetricsLog<Row> {
    const kept = resumed ? ((this.metricRows.get(file) ?? []) as Row[]).filter((r) => r.step <= startStep) : [];
    const rows: Row[] = [...kept];
    this.metricRows.set(file, rows);
    return {
      file: `${this.location}/${file}`,
      resumedRows: kept,
      read: (upToStep = Infinity) => rows.filter((r) => r.step <= upToStep),
      append: (row) => {
        rows.push(row);
      },
    };
  }

  savePlot(file: string, series: readonly PlotSeries[]): void {
    this.plots.set(file, series);
  }

  saveJson(file: string, value: unknown): void {
    this.jsonFiles.set(file, JSON.stringify(value));
  }

  /** A JSON file saved with saveJson, parsed, or null. */
  json(file: string): unknown {
    const text = this.jsonFiles.get(file);
    return text === undefined ? null : JSON.parse(text);
  }

  /** The series of the last plot saved as `file`, or null. */
  plot(file: string): readonly PlotSeries[] | null {
    return this.plots.get(file) ?? null;
  }

  path(): string | null {
    return null;
  }

  /** Frees every tensor copy. */
  dispose(): void {
    for (const f of [...this.states.keys(), ...this.weightFiles.keys()]) this.remove(f);
  }
}
