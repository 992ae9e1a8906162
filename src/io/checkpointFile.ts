/**
 * Model checkpoints on disk (Node): reading a file's config (header only), its weights
 * into a module, and writing a module's weights with self-describing metadata, atomically.
 * The format (metadata keys, layouts) and loading from bytes: io/checkpoint.ts.
 *
 * Rebuilding a model: `readModelConfig` -> build it from `config` -> `loadModelWeights`
 * (or `readCheckpointFile` once, then the model's `*FromCheckpoint`).
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module';
import { fromTfTensors, SafeTensor } from './safetensors';
import { Checkpoint, CheckpointInfo, CHECKPOINT_FORMAT_VERSION, loadCheckpointWeights, parseCheckpointMetadata, TFJS_LAYOUT, TORCH_LAYOUT } from './checkpoint';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensorsFile';
import { toTorchLayout } from './torchLayout';
import { LIBRARY_ID } from './pipelineManifest';

export interface SaveModelOptions {
  /** What the model is: 'unet' | 'autoencoder' | 'text-encoder' | ... (checked on load with `expectKind`). */
  kind: string;
  /** The model's config (plain JSON-safe object: finite numbers, strings, booleans, null, arrays, objects). */
  config: unknown;
  /** Optimiser steps taken so far. Default: omitted. */
  step?: number;
  /** The training seed. Default: omitted. */
  seed?: number;
  /** The command line that produced the file. Default: this process's argv. */
  command?: string;
  /** 'float16' halves the file (weights rounded to half precision). Default 'float32'. */
  storage?: 'float32' | 'float16';
  /** 'torch' stores conv kernels OIHW and linear weights [out, in] for PyTorch. Default 'tfjs'. */
  layout?: 'tfjs' | 'torch';
}

// ---------------------------------------------------------------- helpers

/** The current process's command line, shell-quoted. */
export function currentCommandLine(): string {
  const [, script, ...args] = process.argv;
  return [script ? path.basename(script) : 'node', ...args].map(shellQuote).join(' ');
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Refuses values JSON would silently change: NaN/Infinity (become null), undefined in
 * arrays, functions, bigints, and non-plain objects such as Maps or typed arrays.
 */
export function assertJsonSafe(value: unknown, where: string): void {
  const visit = (v: unknown, at: string): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error(`${where}: ${at || 'value'} is ${v}, which JSON cannot store`);
      return;
    }
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        if (x === undefined) throw new Error(`${where}: ${at}[${i}] is undefined, which JSON cannot store`);
        visit(x, `${at}[${i}]`);
      });
      return;
    }
    if (typeof v === 'object') {
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw new Error(`${where}: ${at || 'value'} is a ${(v as object).constructor.name}; only plain objects and arrays are stored`);
      }
      for (const [k, x] of Object.entries(v)) if (x !== undefined) visit(x, at ? `${at}.${k}` : k);
      return;
    }
    throw new Error(`${where}: ${at || 'value'} is a ${typeof v}, which JSON cannot store`);
  };
  visit(value, '');
}

export function assertInteger(value: number | undefined, name: string, min: number): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= min)) {
    throw new Error(`${name} must be an integer >= ${min}, got ${value}`);
  }
}

function disposeAll(tensors: Iterable<tf.Tensor>): void {
  for (const t of tensors) t.dispose();
}

// ---------------------------------------------------------------- model weights

/** Saves a module's parameters with self-describing metadata (atomic). */
export async function saveModelWeights(file: string, module: Module, options: SaveModelOptions): Promise<void> {
  if (options.kind.length === 0) throw new Error(`${file}: kind must be non-empty`);
  assertJsonSafe(options.config, `${file}: config`);
  assertInteger(options.step, `${file}: step`, 0);
  assertInteger(options.seed, `${file}: seed`, Number.MIN_SAFE_INTEGER);
  const layout = options.layout ?? 'tfjs';
  const metadata: Record<string, string> = {
    format_version: CHECKPOINT_FORMAT_VERSION,
    library: LIBRARY_ID,
    layout: layout === 'torch' ? TORCH_LAYOUT : TFJS_LAYOUT,
    kind: options.kind,
    config: JSON.stringify(options.config ?? null),
    ...(options.step !== undefined ? { step: String(options.step) } : {}),
    ...(options.seed !== undefined ? { seed: String(options.seed) } : {}),
    command: options.command ?? currentCommandLine(),
  };
  const state = module.stateDict(); // the variables themselves: never dispose
  const converted = layout === 'torch' ? toTorchLayout(state, module.parameterLayouts()) : null;
  let safe: Map<string, SafeTensor>;
  try {
    safe = await fromTfTensors(converted ?? state);
  } finally {
    if (converted) disposeAll(converted.values());
  }
  await writeSafetensors(file, safe, metadata, { storage: options.storage ?? 'float32' });
}

/**
 * Loads weights into `module` from a file (see loadCheckpointWeights). Errors start
 * with the file name. Returns the parsed metadata.
 */
export async function loadModelWeights(
  file: string,
  module: Module,
  options: { expectKind?: string; strict?: boolean } = {},
): Promise<CheckpointInfo> {
  return loadCheckpointWeights(await readCheckpointFile(file), module, options);
}

/** Reads and parses a whole checkpoint file (metadata and tensors). */
export async function readCheckpointFile(file: string): Promise<Checkpoint> {
  const { tensors, metadata } = await readSafetensors(file);
  return { info: parseCheckpointMetadata(metadata, file), tensors, source: file };
}

/**
 * Reads only the header: kind, config and metadata, so the model can be rebuilt
 * before `loadModelWeights`. The whole layout is still validated.
 */
export async function readModelConfig(file: string): Promise<CheckpointInfo> {
  const { metadata } = await readSafetensorsHeader(file);
  return parseCheckpointMetadata(metadata, file);
}

// ---------------------------------------------------------------- training state
