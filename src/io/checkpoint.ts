/**
 * Self-describing checkpoints, read from bytes (runs anywhere; the files and the
 * training state are train/checkpoint.ts, Node).
 *
 * A model checkpoint is a safetensors file whose tensor names are the module's dotted
 * parameter names and whose `__metadata__` (all strings) carries what is needed to
 * rebuild the model before loading it (nanoGPT's `model_args`):
 *
 *   format_version  "1"
 *   library         "tfjs-diffusion@<version>"
 *   layout          "tfjs: NHWC, conv HWIO, linear [in,out]"  or  "torch" (OIHW, [out,in])
 *   kind            'unet' | 'autoencoder' | 'text-encoder' | ...
 *   config          the model's config as JSON
 *   step, seed      integers as decimal strings (omitted when unknown)
 *   command         the command line that produced the file
 *
 * Loading: `parseCheckpoint(bytes)` -> build the model from `info.config` -> `loadCheckpointWeights`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module';
import { parseSafetensors, SafeTensor, toTfTensors } from './safetensors';
import { fromTorchLayout } from './torchLayout';

export const CHECKPOINT_FORMAT_VERSION = '1';
/** The `layout` metadata value for weights in this library's own layouts. */
export const TFJS_LAYOUT = 'tfjs: NHWC, conv HWIO, linear [in,out]';
/** The `layout` metadata value for weights exported in PyTorch layouts. */
export const TORCH_LAYOUT = 'torch';
/** The file name of a model's weights in a run folder (its UNet, autoencoder, CLIP, ...). */
export const WEIGHTS_FILE = 'model.safetensors';

/** A checkpoint's metadata, parsed. */
export interface CheckpointInfo {
  kind: string;
  /** Parsed JSON; validating it is the caller's job (e.g. `unetConfig(info.config as Partial<UNetConfig>)`). */
  config: unknown;
  layout: 'tfjs' | 'torch';
  library: string;
  step: number | null;
  seed: number | null;
  command: string | null;
  /** All `__metadata__` entries as stored. */
  metadata: Record<string, string>;
}

/** A checkpoint parsed from its bytes: metadata and tensors (plain typed arrays, no tf yet). */
export interface Checkpoint {
  readonly info: CheckpointInfo;
  readonly tensors: ReadonlyMap<string, SafeTensor>;
  /** Where the bytes came from (a path or URL): starts every error message. */
  readonly source: string;
}

// ---------------------------------------------------------------- helpers

function parseIntegerField(meta: Record<string, string>, key: string, file: string): number | null {
  const s = meta[key];
  if (s === undefined) return null;
  if (!/^-?\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new Error(`${file}: metadata '${key}' must be an integer, got '${s}'`);
  return Number(s);
}

/** Parses and checks the metadata of a file written by this library. */
export function parseCheckpointMetadata(meta: Record<string, string>, file: string): CheckpointInfo {
  if (meta.format_version === undefined) {
    throw new Error(
      `${file}: no 'format_version' in __metadata__: not a tfjs-diffusion checkpoint ` +
        `(foreign weights: readSafetensors + fromTorchLayout + module.loadStateDict)`,
    );
  }
  if (meta.format_version !== CHECKPOINT_FORMAT_VERSION) {
    throw new Error(`${file}: unknown checkpoint format_version '${meta.format_version}' (this library reads '${CHECKPOINT_FORMAT_VERSION}')`);
  }
  if (meta.kind === undefined) throw new Error(`${file}: no 'kind' in __metadata__`);
  let layout: 'tfjs' | 'torch';
  if (meta.layout === TFJS_LAYOUT) layout = 'tfjs';
  else if (meta.layout === TORCH_LAYOUT) layout = 'torch';
  else throw new Error(`${file}: unknown layout ${JSON.stringify(meta.layout)} (expected '${TFJS_LAYOUT}' or '${TORCH_LAYOUT}')`);
  let config: unknown = null;
  if (meta.config !== undefined) {
    try {
      config = JSON.parse(meta.config);
    } catch (e) {
      throw new Error(`${file}: metadata 'config' is not valid JSON (${(e as Error).message})`);
    }
  }
  return {
    kind: meta.kind,
    config,
    layout,
    library: meta.library ?? 'unknown',
    step: parseIntegerField(meta, 'step', file),
    seed: parseIntegerField(meta, 'seed', file),
    command: meta.command ?? null,
    metadata: { ...meta },
  };
}

function disposeAll(tensors: Iterable<tf.Tensor>): void {
  for (const t of tensors) t.dispose();
}

// ---------------------------------------------------------------- reading

/** Parses a checkpoint file's bytes; errors start with `source`. */
export function parseCheckpoint(bytes: Uint8Array, source: string): Checkpoint {
  const { tensors, metadata } = parseSafetensors(bytes, source);
  return { info: parseCheckpointMetadata(metadata, source), tensors, source };
}

/**
 * Loads a checkpoint's weights into `module`: every parameter must be present with its
 * shape (and, unless `strict: false`, nothing else). Torch-layout files are converted back.
 * Errors start with the checkpoint's source.
 */
export function loadCheckpointWeights(checkpoint: Checkpoint, module: Module, options: { expectKind?: string; strict?: boolean } = {}): CheckpointInfo {
  const { info, source } = checkpoint;
  if (options.expectKind !== undefined && info.kind !== options.expectKind) {
    throw new Error(`${source}: expected a '${options.expectKind}' checkpoint, got kind '${info.kind}'`);
  }
  // NaN / Inf weights sample all-black images with exit code 0: refused here, naming the tensor.
  for (const [name, t] of checkpoint.tensors) {
    if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') {
      const bad = t.data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`${source}: tensor '${name}' holds ${t.data[bad]} at index ${bad}: non-finite weights (a diverged run?) are refused`);
    }
  }
  const loaded = toTfTensors(checkpoint.tensors);
  let converted: Map<string, tf.Tensor> | null = null;
  try {
    let weights = loaded;
    if (info.layout === 'torch') {
      // Convert the names the module knows; unknown names pass through so loadStateDict reports them.
      const layouts = module.parameterLayouts();
      const known = new Map([...loaded].filter(([n]) => layouts.has(n)));
      converted = fromTorchLayout(known, layouts);
      weights = new Map([...loaded].map(([n, t]) => [n, converted?.get(n) ?? t]));
    }
    module.loadStateDict(weights, { strict: options.strict ?? true });
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  } finally {
    disposeAll(loaded.values());
    if (converted) disposeAll(converted.values());
  }
  return info;
}
