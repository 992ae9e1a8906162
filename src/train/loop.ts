/**
 * The training loop, written once for every model family (nanoGPT's flat loop):
 *
 *   start or resume the run (store.start: never over another run without overwrite)
 *   resume: model, EMA, optimiser and data position from the training state
 *   memory: measure a step at batch 1 and 2, refuse what will not fit the wasm heap
 *   for step in [start, steps):
 *     lr = learningRate(step)                    warm-up, then constant or cosine
 *     workers: publish this step's weights
 *     for each micro-batch:                      (gradient accumulation)
 *       loss, grads += the family's loss of its next batch and its gradients
 *                       (here, or split over data-parallel workers)
 *     clip, AdamW step, EMA update
 *     every logEvery (and when validating or checkpointing): read the losses (a sync
 *       point), stop on a non-finite one, metrics row, progress line
 *     every valEvery: the family's validation (into the row)
 *     every checkpointEvery, at the end, on a stop: shipped weights + training state
 *     every sampleEvery and at the end: the family's sample grid (after the checkpoint,
 *       so a kill while it draws loses no steps)
 *     every snapshotEvery: a float16 copy of the shipped weights
 *     a time budget, a shared deadline or the signal (Ctrl-C, SIGTERM) ends the run
 *     after the step, with a checkpoint
 *   the loss curves of the whole run (earlier sessions included)
 *
 * What a family plugs in (ModelFamily): its model (and EMA), optimiser and parameters,
 * the loss and gradients of its next batch (and, optionally, the same on worker
 * threads), what its weights and state say about it, its validation, samples and
 * plot. The diffusion UNets (pixel, latent, text, super-resolution, unCLIP decoder:
 * ./diffusionTraining.ts), CLIP (./clipTraining.ts), the autoencoder
 * (./autoencoderTraining.ts), the prior (./priorTraining.ts) and the evaluation
 * classifier (eval/trainClassifier.ts) all run through here.
 *
 * Storage is a RunStore (./runStore.ts): a folder on disk (./folderRun.ts) or memory.
 * This file touches no file system.
 *
 * Exact resume: a family keys every random draw by (seed, step, example index) and
 * keeps its data position in the state, so a resumed run reproduces the losses of an
 * uninterrupted one (same backend).
 */
import * as tf from '@tensorflow/tfjs';
import { assertBatchFits, describeMemory, measureStepMemory, MemoryEstimate } from '../backend/memory';
import type { Module } from '../nn/module';
import type { PlotSeries } from '../io/plot';
import { AdamW } from './adamw';
import { copyWeights, EmaConfig, emaDecay, updateEma } from './ema';
import { learningRate } from './lr';
import { ProgressReporter, yieldToEventLoop } from './progress';
import { profileKernels } from './profile';
import { stateTensorsWithPrefix } from './runStore';
import type { RunFiles, RunStartOptions, RunStore, TrainingFamily, TrainingState } from './runStore';

// ---------------------------------------------------------------- what the loop runs

/** The loop's own settings, mapped from a family's config. */
export interface LoopConfig {
  readonly steps: number;
  /** Examples per optimiser step (the throughput column). */
  readonly batchSize: number;
  /** Micro-batches per step; their gradients are averaged. */
  readonly gradAccum: number;
  readonly seed: number;
  /** Peak learning rate, linear warm-up, then constant or cosine decay to lr * lrMinRatio at `steps`. */
  readonly lr: number;
  readonly warmupSteps: number;
  readonly lrDecay: 'constant' | 'cosine';
  readonly lrMinRatio: number;
  /** EMA of the weights (the family's `ema` module), or null. */
  readonly ema: EmaConfig | null;
  readonly logEvery: number;
  readonly checkpointEvery: number;
  /** Validate every N steps (0 = not periodically). */
  readonly valEvery: number;
  /** Validate at the end of the run too. */
  readonly valAtEnd: boolean;
  /** Sample grids every N steps (0 = only at the end). */
  readonly sampleEvery: number;
  /** float16 weight snapshots every N steps (0 = none). */
  readonly snapshotEvery: number;
  readonly timeBudgetMinutes: number | null;
  /** Data-parallel worker threads (1 = this thread computes the gradients). */
  readonly workers: number;
}

/** A loss and its gradients by parameter name. loss: a scalar, or a vector of parts whose [0] is the loss. */
export interface StepGradients {
  readonly loss: tf.Tensor;
  readonly grads: Map<string, tf.Tensor>;
}

/** Where a step's gradients come from: this thread, or data-parallel workers. */
export interface GradientSource {
  /** Before each optimiser step (workers: publish the weights). */
  beginStep?(): void;
  /** Loss and gradients of micro-batch `micro` of `step` (the family draws the batch). The caller owns the tensors. */
  next(step: number, micro: number): StepGradients | Promise<StepGradients>;
  /** Stops the workers. */
  close?(): Promise<void>;
  /** One line for the log, e.g. how the batch is split. */
  readonly description?: string;
}

/** Every metrics row: the loop's columns; a family adds its own. */
export interface LoopRow {
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  readonly gradNorm: number;
  readonly wallSeconds: number;
}

/** What a model family plugs into the loop. */
export interface ModelFamily<Row extends LoopRow> {
  /** Tag of its training states: a resume by another family is refused. */
  readonly family: TrainingFamily;
  /** Its files in the run: state, weights, logs[0] the metrics, logs[1] the loss plot, dirs. */
  readonly files: RunFiles;
  /** The trained model: 'model.' in the training state. */
  readonly model: Module;
  /** The EMA copy ('ema.'), shipped instead of the model; null without EMA. */
  readonly ema: Module | null;
  readonly optimizer: AdamW;
  readonly params: ReadonlyArray<[string, tf.Variable]>;
  /** The family's config as given (stored in the state as `config`). */
  readonly config: object;
  /** What must not change across a resume (e.g. batch and seed: the data order would differ), from a config. */
  runIdentity(config: Record<string, unknown>): Record<string, string | number>;
  /** Further resume checks on the saved state's JSON (throw naming `where`). */
  checkResume?(json: Record<string, unknown>, where: string): void;
  /** Restores the data position from the saved JSON. */
  restore?(json: Record<string, unknown>): void;
  /** JSON saved in the state besides the loop's (the data position, ...). */
  stateJson(): Record<string, unknown>;
  /** The shipped weights' kind and config. */
  weights(): { kind: string; config: Record<string, unknown> };
  /** Gradients computed in this thread. */
  readonly local: GradientSource;
  /** Gradients from `workers` threads (families that support data parallelism). */
  startWorkers?(workers: number): Promise<GradientSource>;
  /** Examples per gradient call (a micro-batch): the memory check's batch. */
  readonly microBatch: number;
  /** One loss-and-gradients call at batch `b` on fixed examples, nothing updated (memory estimate, --profile). */
  probe?(b: number): void;
  /** Columns from the loss parts of the logged step (e.g. the autoencoder's rec and kl). */
  rowFields?(parts: readonly number[]): Partial<Row>;
  /** Columns read at each log step (e.g. CLIP's logit scale). */
  logFields?(): Promise<Partial<Row>>;
  /** Validation columns (null: nothing to validate), with its own log line. */
  validate?(step: number): Promise<Partial<Row> | null>;
  /** Writes a sample grid of the shipped weights at `step`. */
  sample?(step: number): Promise<void>;
  /** Extra fields of the progress line. */
  progress?(row: Row): Record<string, string>;
  /** The loss curves of the whole run. */
  plot?(rows: readonly Row[]): { series: PlotSeries[]; title: string };
  /** Name of the throughput column (default 'imagesPerSec'; the prior's 'pairsPerSec'). */
  readonly throughput?: 'imagesPerSec' | 'pairsPerSec';
}

/** What every trainer takes about the run besides its model and data. */
export interface RunOptions<Row extends LoopRow = LoopRow> extends RunStartOptions {
  readonly onLog?: (line: string) => void;
  /** Every metrics row as it is written. */
  readonly onMetrics?: (row: Row) => void;
  /** Progress text to write verbatim (default: lines through onLog). */
  readonly onProgress?: (text: string) => void;
  /** Rewrite one progress line with '\r' (terminals). */
  readonly isTTY?: boolean;
  /** Stops the run cleanly after the current step (with a checkpoint), e.g. on SIGINT. */
  readonly signal?: AbortSignal;
  /**
   * Wall-clock end (ms since the epoch) of a budget shared with other stages (train/timeBudget.ts):
   * checked after every step, it ends the run like the time budget (a checkpoint, not an interruption).
   * Not a timer aborting `signal`: a timer runs only when the loop yields (at log steps), so it would
   * end the run up to logEvery steps late.
   */
  readonly deadline?: number;
  /** The command line recorded in checkpoints. */
  readonly command?: string;
  /** Before training, profile one micro-batch step and log its ten most expensive kernels. */
  readonly profile?: boolean;
  /**
   * Check the run (folder, resume, memory), log the resolved config and the memory estimate, and
   * return without training or writing anything.
   */
  readonly dryRun?: boolean;
}

/** The run options of `opts` alone (a recipe passes its caller's on to the trainer). */
export function runOptionsOf<Row extends LoopRow>(opts: RunOptions<Row>): RunOptions<Row> {
  const { resume, overwrite, onLog, onMetrics, onProgress, isTTY, signal, deadline, command, profile, dryRun } = opts;
  return { resume, overwrite, onLog, onMetrics, onProgress, isTTY, signal, deadline, command, profile, dryRun };
}

export interface LoopResult<Row extends LoopRow> {
  readonly startStep: number;
  readonly endStep: number;
  /** Loss of every step run in this call (index = step - startStep). */
  readonly losses: number[];
  readonly memory: MemoryEstimate | null;
  readonly stoppedEarly: boolean;
  /** The columns of the last validation of this call, or null. */
  readonly lastValidation: Partial<Row> | null;
}

// ---------------------------------------------------------------- helpers

const describeIdentity = (v: Record<string, string | number>): string => Object.entries(v).map(([k, x]) => `${k} ${x}`).join(' / ');

/** Refuses a resume whose run identity (batch, seed, ...) differs from the saved run's: its data order would differ. */
export function checkSameRun(saved: Record<string, string | number>, current: Record<string, string | number>, where: string): void {
  const differs = Object.keys(current).some((k) => saved[k] !== undefined && saved[k] !== current[k]);
  if (differs) throw new Error(`${where}: saved with ${describeIdentity(saved)}, resumed with ${describeIdentity(current)}: resume needs the same values`);
}

/** The run identity of most families: the data order depends on the batch size and the seed. */
export function batchAndSeed(config: Record<string, unknown>): Record<string, string | number> {
  return { batch: config.batchSize as number, seed: config.seed as number };
}

/** Loads model, EMA, optimiser and data position from a state; returns its step. */
function restoreState<Row extends LoopRow>(f: ModelFamily<Row>, state: TrainingState, where: string): number {
  const saved = state.json.config as Record<string, unknown> | undefined;
  if (saved !== undefined) checkSameRun(f.runIdentity(saved), f.runIdentity(f.config as Record<string, unknown>), where);
  f.checkResume?.(state.json, where);
  const pick = (prefix: string): Map<string, tf.Tensor> => stateTensorsWithPrefix(state, prefix);
  f.model.loadStateDict(pick('model.'), { source: where });
  f.ema?.loadStateDict(pick('ema.'), { source: where });
  f.optimizer.loadState(Number(state.json.optimizerStep), pick('optim.'));
  f.restore?.(state.json);
  return state.step;
}

/** Sums a micro-batch's loss and gradients into the running ones (disposing what it replaces). */
function accumulate(sum: StepGradients | null, next: StepGradients): StepGradients {
  if (sum === null) return next;
  const grads = new Map([...sum.grads].map(([n, g]) => [n, tf.add(g, next.grads.get(n) as tf.Tensor)]));
  const loss = tf.add(sum.loss, next.loss);
  tf.dispose([...sum.grads.values(), ...next.grads.values(), sum.loss, next.loss]);
  return { loss, grads };
}

const stepFile = (dir: string, step: number, ext: string): string => `${dir}/step_${String(step).padStart(6, '0')}.${ext}`;

/**
 * --dry-run: what the run would do, without doing it: the folder decision (no file touched),
 * a resume's checks against the saved state, the resolved config and the measured memory
 * of a step (refused like a real run when it cannot fit the wasm heap).
 */
async function dryRun<Row extends LoopRow>(f: ModelFamily<Row>, cfg: LoopConfig, store: RunStore, opts: RunOptions<Row>, resolved: Record<string, unknown>): Promise<LoopResult<Row>> {
  const log = opts.onLog ?? (() => undefined);
  const resuming = store.decide(f.files, opts);
  if (resuming) {
    const json = await store.readStateJson(f.files.state, f.family);
    const where = store.path(f.files.state) ?? `${store.location}/${f.files.state}`;
    const saved = json.config as Record<string, unknown> | undefined;
    if (saved !== undefined) checkSameRun(f.runIdentity(saved), f.runIdentity(f.config as Record<string, unknown>), where);
    f.checkResume?.(json, where);
  }
  log(`dry run: ${resuming ? `would resume the run in ${store.location}` : `would start a new run in ${store.location}`}; resolved config:`);
  log(JSON.stringify(resolved, null, 2));
  let memory: MemoryEstimate | null = null;
  if (f.probe !== undefined) {
    const perWorker = Math.ceil(f.microBatch / cfg.workers);
    memory = await measureStepMemory(f.probe.bind(f));
    log(`memory (${tf.getBackend()}): ${describeMemory(memory, perWorker)}${cfg.workers > 1 ? ` (each of ${cfg.workers} workers)` : ''}`);
    assertBatchFits(memory, perWorker);
  } else {
    log('memory: this family has no step probe (its steps are small)');
  }
  log('dry run: nothing trained, nothing written');
  return { startStep: 0, endStep: 0, losses: [], memory, stoppedEarly: false, lastValidation: null };
}

// ---------------------------------------------------------------- the loop

export async function runTrainingLoop<Row extends LoopRow>(family: ModelFamily<Row>, cfg: LoopConfig, store: RunStore, opts: RunOptions<Row>): Promise<LoopResult<Row>> {
  const f = family;
  const log = opts.onLog ?? (() => undefined);
  const where = (file: string): string => store.path(file) ?? `${store.location}/${file}`;
  const [metricsFile, plotFile] = f.files.logs;

  const resolved = { family: f.family, run: store.location, loop: cfg, config: f.config, weights: f.weights() };
  if (opts.dryRun === true) return dryRun(f, cfg, store, opts, resolved);

  // ---- start or resume (the store refuses a run over another); the resolved config beside the run
  const resuming = store.start(f.files, opts, log);
  if (f.files.config !== undefined) store.saveJson(f.files.config, { ...resolved, resumed: resuming, command: opts.command ?? null });
  let startStep = 0;
  if (resuming) {
    const state = await store.loadState(f.files.state, f.family);
    try {
      startStep = restoreState(f, state, where(f.files.state));
    } finally {
      tf.dispose([...state.tensors.values()]);
    }
    log(`resumed from ${where(f.files.state)} at step ${startStep}`);
  } else if (f.ema !== null) {
    copyWeights(f.ema, f.model);
  }
  // a resumed run keeps its rows up to startStep (a torn last line from a kill is dropped); a fresh one starts empty
  const metrics = store.openMetrics<Row>(metricsFile, startStep, startStep > 0, log);

  // ---- memory: measure a step at micro-batch 1 and 2, refuse what will not fit the wasm heap
  let memory: MemoryEstimate | null = null;
  const probe = f.probe?.bind(f);
  if (probe !== undefined && tf.getBackend() === 'wasm') {
    memory = await measureStepMemory(probe);
    assertBatchFits(memory, Math.ceil(f.microBatch / cfg.workers)); // each data-parallel worker has a heap of its own
  }

  // ---- --profile: where one micro-batch step spends its time (nothing is updated)
  if (opts.profile === true && probe !== undefined) {
    const prof = await profileKernels(() => probe(f.microBatch), 10);
    log(`profile of one step (micro-batch ${f.microBatch}): ${prof.wallMs.toFixed(0)} ms wall, ${prof.totalMs.toFixed(0)} ms in kernels; top kernels:`);
    for (const r of prof.rows) log(`  ${r.kernel.padEnd(28)} ${r.ms.toFixed(1).padStart(9)} ms  ${(100 * r.share).toFixed(1).padStart(5)}%  ${r.calls} calls`);
    log(`  ${'(other kernels)'.padEnd(28)} ${prof.otherMs.toFixed(1).padStart(9)} ms`);
  }

  // ---- checkpoint: shipped weights (self-describing) + the full state for resume
  const shipped = f.ema ?? f.model;
  const checkpoint = async (step: number): Promise<void> => {
    const w = f.weights();
    await store.saveWeights(f.files.weights, shipped, { kind: w.kind, config: w.config, step, seed: cfg.seed, command: opts.command });
    const tensors = new Map<string, tf.Tensor>();
    for (const [n, v] of f.model.namedParameters()) tensors.set(`model.${n}`, v);
    if (f.ema !== null) for (const [n, v] of f.ema.namedParameters()) tensors.set(`ema.${n}`, v);
    for (const [n, t] of f.optimizer.stateTensors()) tensors.set(`optim.${n}`, t);
    const json = { ...f.stateJson(), optimizerStep: f.optimizer.stepCount, config: f.config, checkpointConfig: w.config };
    await store.saveState(f.files.state, { step, tensors, json }, f.family);
  };

  // ---- the loop
  const runStart = Date.now() - (metrics.resumedRows.length > 0 ? metrics.resumedRows[metrics.resumedRows.length - 1].wallSeconds * 1000 : 0);
  // A time budget or a deadline may end the run before cfg.steps: the ETA is the sooner end.
  const secondsLeft = (): number | null => {
    const ends = [
      ...(cfg.timeBudgetMinutes !== null ? [runStart + cfg.timeBudgetMinutes * 60_000] : []),
      ...(opts.deadline !== undefined ? [opts.deadline] : []),
    ];
    return ends.length === 0 ? null : (Math.min(...ends) - Date.now()) / 1000;
  };
  const progress = new ProgressReporter({
    total: cfg.steps, startStep, isTTY: opts.isTTY ?? false, secondsLeft,
    onLine: opts.onProgress ?? log,
  });
  const throughput = f.throughput ?? 'imagesPerSec';
  const stopped = (): boolean => opts.signal?.aborted ?? false;
  const losses: number[] = [];
  let pending: tf.Tensor[] = [];
  let lastNorm: tf.Scalar | null = null;
  let lastCheckpoint = startStep;
  let lastValidation: Partial<Row> | null = null;
  let windowStart = Date.now();
  let windowExamples = 0;
  let step = startStep;
  let stoppedEarly = false;
  let source: GradientSource = f.local;
  try {
    if (cfg.workers > 1) {
      if (f.startWorkers === undefined) throw new Error(`${f.family} training has no data-parallel workers: use workers 1`);
      source = await f.startWorkers(cfg.workers);
      log(`data parallel: ${cfg.workers} workers (single-thread wasm each)${source.description !== undefined ? `, ${source.description}` : ''}`);
    }
    const gradientsOf = async (m: number): Promise<StepGradients> => {
      try {
        return await source.next(step, m);
      } catch (e) {
        if (source === f.local) throw e;
        const kept = lastCheckpoint > 0 ? `The last checkpoint (step ${lastCheckpoint}) is kept in ${store.location}.` : 'No checkpoint had been written yet.';
        throw new Error(`${(e as Error).message}. ${kept}`);
      }
    };
    while (step < cfg.steps) {
      const lr = learningRate(step, { peak: cfg.lr, warmupSteps: cfg.warmupSteps, decay: cfg.lrDecay, totalSteps: cfg.steps, minRatio: cfg.lrMinRatio });
      source.beginStep?.();
      let sum: StepGradients | null = null;
      for (let m = 0; m < cfg.gradAccum; m++) sum = accumulate(sum, await gradientsOf(m));
      const total = sum as StepGradients;
      const grads = cfg.gradAccum === 1 ? total.grads : new Map([...total.grads].map(([n, g]) => [n, tf.div(g, cfg.gradAccum)]));
      const meanLoss = cfg.gradAccum === 1 ? total.loss : tf.div(total.loss, cfg.gradAccum);
      lastNorm?.dispose();
      lastNorm = f.optimizer.applyGradients(f.params, grads, lr);
      tf.dispose([...total.grads.values(), ...(grads !== total.grads ? grads.values() : []), ...(meanLoss !== total.loss ? [total.loss] : [])]);
      if (f.ema !== null && cfg.ema !== null) updateEma(f.ema, f.model, emaDecay(step + 1, cfg.ema));
      pending.push(meanLoss);
      step += 1;
      windowExamples += cfg.batchSize;

      if (step % cfg.logEvery === 0) await yieldToEventLoop(); // a pending Ctrl-C handler runs now, before the stop check
      const deadlineReached = opts.deadline !== undefined && Date.now() >= opts.deadline;
      const budgetReached = (cfg.timeBudgetMinutes !== null && Date.now() - runStart >= cfg.timeBudgetMinutes * 60_000) || deadlineReached;
      const atEnd = step === cfg.steps || stopped() || budgetReached;
      const doCheckpoint = step % cfg.checkpointEvery === 0 || atEnd;
      const doValidate = f.validate !== undefined && ((cfg.valEvery > 0 && step % cfg.valEvery === 0) || (atEnd && cfg.valAtEnd));
      if (step % cfg.logEvery === 0 || doCheckpoint || doValidate) {
        // Sync point: read the losses of the steps since the last read.
        const values = await Promise.all(pending.map(async (l) => Array.from(await l.data())));
        tf.dispose(pending);
        pending = [];
        const bad = values.findIndex((v) => !Number.isFinite(v[0]));
        if (bad >= 0) {
          throw new Error(
            `loss became ${values[bad][0]} at step ${step - values.length + bad + 1}: training stopped. ` +
              `The last good checkpoint (step ${lastCheckpoint}) is kept in ${store.location}. Lower --lr or enable gradient clipping.`,
          );
        }
        losses.push(...values.map((v) => v[0]));
        const last = values[values.length - 1];
        const gradNorm = (await (lastNorm as tf.Scalar).data())[0];
        const secs = (Date.now() - windowStart) / 1000;
        const extra = (await f.logFields?.()) ?? {};
        let validation: Partial<Row> | null = null;
        if (doValidate && f.validate !== undefined) {
          validation = await f.validate(step);
          if (validation !== null) lastValidation = validation;
        }
        const row = {
          step,
          loss: last[0],
          ...(f.rowFields?.(last) ?? {}),
          lr,
          gradNorm,
          ...extra,
          [throughput]: windowExamples / Math.max(secs, 1e-9),
          wallSeconds: (Date.now() - runStart) / 1000,
          ...(validation ?? {}),
        } as unknown as Row;
        metrics.append(row);
        opts.onMetrics?.(row);
        const rate = (row as unknown as Record<string, number>)[throughput];
        progress.update(step, { loss: row.loss, extra: { lr: row.lr.toExponential(2), ...(f.progress?.(row) ?? {}), [throughput === 'imagesPerSec' ? 'img/s' : 'pairs/s']: rate.toFixed(1) } });
        windowStart = Date.now();
        windowExamples = 0;
      }
      // A stop requested during this step (e.g. by a metrics callback) still gets its checkpoint.
      if (doCheckpoint || stopped()) {
        await checkpoint(step);
        lastCheckpoint = step;
      }
      // After the checkpoint: a kill while the grid is drawn loses no steps.
      if (f.sample !== undefined && ((cfg.sampleEvery > 0 && step % cfg.sampleEvery === 0) || atEnd)) await f.sample(step);
      if (cfg.snapshotEvery > 0 && step % cfg.snapshotEvery === 0) {
        const w = f.weights();
        await store.saveWeights(stepFile('snapshots', step, 'safetensors'), shipped, { kind: w.kind, config: w.config, step, seed: cfg.seed, command: opts.command, storage: 'float16' });
      }
      if (budgetReached && step < cfg.steps && !stopped()) {
        log(deadlineReached ? `deadline of the shared time budget reached at step ${step} (checkpoint written)`
          : `time budget of ${cfg.timeBudgetMinutes} min reached at step ${step} (checkpoint written)`);
        break;
      }
      if (stopped() && step < cfg.steps) {
        log(`stopped at step ${step} (checkpoint written); resume with the same command and --resume`);
        stoppedEarly = true;
        break;
      }
    }
  } finally {
    if (source !== f.local) await source.close?.();
    tf.dispose(pending);
    lastNorm?.dispose();
  }
  progress.done();

  // ---- loss curves of the whole run (including earlier sessions)
  const all = metrics.read(step);
  if (all.length > 1 && f.plot !== undefined && plotFile !== undefined) {
    const { series, title } = f.plot(all);
    store.savePlot(plotFile, series, { width: 640, height: 400, logY: true, title });
  }
  return { startStep, endStep: step, losses, memory, stoppedEarly, lastValidation };
}

/** A sample grid's file name in the run: samples/step_000100.png. */
export function sampleFileName(step: number): string {
  return stepFile('samples', step, 'png');
}
