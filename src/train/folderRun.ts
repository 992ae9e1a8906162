/**
 * A run folder on disk (Node): the RunStore (./runStore.ts) every trainer uses from
 * the command line and scripts.
 *
 *   <run>/<weights>.safetensors   the shipped weights (EMA where the family keeps one)
 *   <run>/<state>.safetensors     the training state an exact resume reads (./checkpoint.ts)
 *   <run>/<metrics>.jsonl         one JSON row per log step (./runFolder.ts)
 *   <run>/<plot>.png              the loss curves of the whole run
 *   <run>/samples/, snapshots/    grids and float16 weight snapshots, where the family writes them
 *
 * Every write is atomic (io/atomicWrite.ts); start() refuses a new run over a run
 * without `overwrite` and removes the temporary files of writes a kill interrupted.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Module } from '../nn/module';
import { saveModelWeights } from '../io/checkpointFile';
import { writeFileAtomicSync } from '../io/atomicWrite';
import { saveLinePlot, PlotOptions, PlotSeries } from '../io/plot';
import { loadTrainingState, readTrainingStateJson, saveTrainingState } from './checkpoint';
import { decideRunStart, openMetricsLog, removeStaleTempFiles, startRun } from './runFolder';
import type { MetricsLog, RunFiles, RunStartOptions, RunStore, TrainingFamily, TrainingState, WeightsMeta } from './runStore';

export class FolderRun implements RunStore {
  constructor(readonly location: string) {}

  decide(files: RunFiles, options: RunStartOptions): boolean {
    return decideRunStart(this.location, files, options);
  }

  start(files: RunFiles, options: RunStartOptions, onLog: (line: string) => void = () => undefined): boolean {
    const resume = startRun(this.location, files, options, onLog);
    fs.mkdirSync(this.location, { recursive: true });
    for (const d of files.dirs ?? []) fs.mkdirSync(path.join(this.location, d), { recursive: true });
    removeStaleTempFiles(this.location, onLog);
    return resume;
  }

  loadState(file: string, family: TrainingFamily): Promise<TrainingState> {
    return loadTrainingState(this.file(file), family);
  }

  saveState(file: string, state: TrainingState, family: TrainingFamily): Promise<void> {
    return saveTrainingState(this.file(file), state, family);
  }

  readStateJson(file: string, family?: TrainingFamily): Promise<Record<string, unknown>> {
    return readTrainingStateJson(this.file(file), family);
  }

  async saveWeights(file: string, module: Module, meta: WeightsMeta): Promise<void> {
    const target = this.file(file);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    await saveModelWeights(target, module, meta);
  }

  openMetrics<Row extends { readonly step: number }>(file: string, startStep: number, resumed: boolean, onWarn?: (message: string) => void): MetricsLog<Row> {
    return openMetricsLog<Row>(this.file(file), startStep, resumed, onWarn);
  }

  savePlot(file: string, series: readonly PlotSeries[], options: PlotOptions): void {
    saveLinePlot(this.file(file), series, options);
  }

  saveJson(file: string, value: unknown): void {
    writeFileAtomicSync(this.file(file), JSON.stringify(value, null, 2) + '\n');
  }

  path(file: string): string {
    return this.file(file);
  }

  private file(name: string): string {
    return path.join(this.location, name);
  }
}
