/**
 * Messages between the page (main.ts) and its sampling worker (worker.ts).
 * The worker owns TF.js: one backend and at most one loaded pipeline.
 */

export type PageBackend = 'webgl' | 'wasm' | 'webgpu';
export type PageSampler = 'ddpm' | 'ddim' | 'dpm-solver++';
export const PAGE_SAMPLERS: readonly PageSampler[] = ['ddpm', 'ddim', 'dpm-solver++'];

/** What the page needs to know of a loaded pipeline to build its form. */
export interface PipelineSummary {
  readonly design: string;
  /** text: prompts; class: labels (classNames); none: unconditional. */
  readonly conditioning: 'text' | 'class' | 'none';
  readonly classNames: readonly string[] | null;
  readonly imageSize: number;
  readonly imageChannels: number;
  readonly defaults: { readonly sampler?: PageSampler; readonly steps?: number; readonly guidance?: number; readonly prompts?: readonly string[] };
  readonly description: string;
}

export interface GenerateRequest {
  /** Images in all. */
  readonly n: number;
  /** Text pipelines: one prompt per image (each row's prompt repeated `perRow` times); else null. */
  readonly prompts: readonly string[] | null;
  /** Class pipelines: one label per image, as prompts; else null. */
  readonly labels: readonly number[] | null;
  /** Images per prompt / label: the grid's columns. */
  readonly perRow: number;
  readonly seed: number;
  readonly sampler: PageSampler;
  readonly steps: number;
  readonly guidance: number;
}

export type ToWorker =
  | { readonly type: 'init'; readonly backend: PageBackend; readonly wasmPaths: string }
  /** source: a base URL, or relative file name -> bytes (a picked folder). */
  | { readonly type: 'load'; readonly source: string | Record<string, Uint8Array> }
  | { readonly type: 'generate'; readonly request: GenerateRequest }
  | { readonly type: 'abort' };

export type FromWorker =
  | { readonly type: 'backend'; readonly backend: string; readonly reason: string; readonly threads: number | null }
  | { readonly type: 'load-progress'; readonly loaded: number; readonly total: number | null; readonly file: string }
  | { readonly type: 'loaded'; readonly summary: PipelineSummary }
  | { readonly type: 'step'; readonly step: number; readonly total: number; readonly stage: string }
  | {
      readonly type: 'result';
      /** RGBA bytes of the grid (for ImageData). */
      readonly rgba: Uint8ClampedArray;
      readonly width: number;
      readonly height: number;
      readonly images: number;
      readonly seconds: number;
      readonly backend: string;
      /** tf.memory().numTensors in the worker afterwards: the pipeline's weights only, unless something leaked. */
      readonly numTensors: number;
    }
  | { readonly type: 'aborted' }
  /** phase: what failed ('backend', 'load', 'generate'); the page puts it in #error. */
  | { readonly type: 'error'; readonly phase: 'backend' | 'load' | 'generate'; readonly message: string };

/**
 * What the page puts on `globalThis.tfjsDiffusionPage` for automation (the
 * browser test, the screenshot and timing commands): plain data, so Node code
 * can read the page without DOM types.
 */
export interface PageProbe {
  /** Set once the shipped-pipeline list is filled. */
  readonly ready: boolean;
  /** Finished actions (Load, Generate, a folder pick), successful or not. */
  readonly actions: number;
  /** Sampling workers started so far (a backend change, or a Stop the worker did not answer in time, starts one). */
  readonly workersStarted: number;
  outcome(): PageOutcome;
  /** The loaded pipeline, or null. */
  pipeline(): PipelineSummary | null;
  /** The last Generate that drew a grid, or null. */
  lastRun(): PageRun | null;
  /** The pixels of <canvas id="grid"> as drawn (RGBA, getImageData's order). */
  grid(): { readonly width: number; readonly height: number; readonly rgba: number[] };
}

export interface PageOutcome {
  /** #error's text, or null when it is hidden. */
  readonly error: string | null;
  readonly status: string;
  /** #backend-used: the TF.js backend that ran ('wasm', 'webgl', ...). */
  readonly backendUsed: string;
}

export interface PageRun {
  readonly images: number;
  /** Wall time of generate + reading the images back, in the worker. */
  readonly seconds: number;
  readonly backend: string;
  readonly sampler: PageSampler;
  readonly steps: number;
  /** Tensors alive in the worker after the run (constant from run to run unless something leaks). */
  readonly numTensors: number;
}
