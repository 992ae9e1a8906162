/**
 * Training state files (Node): what an exact resume after a kill reads. A second
 * safetensors file beside the weights with kind 'training-state', the tensors the
 * trainer chose (model, EMA, optimiser moments) stored in float32, and everything else
 * (RNG states, data position, optimiser scalars, ...) as one JSON string under the
 * metadata key `state`. Written atomically (io/atomicWrite.ts): a kill mid-save leaves
 * the previous file. Model weights on disk: io/checkpointFile.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { fromTfTensors, toTfTensors } from '../io/safetensors';
import { CHECKPOINT_FORMAT_VERSION, parseCheckpointMetadata, TFJS_LAYOUT } from '../io/checkpoint';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../io/safetensorsFile';
import { assertInteger, assertJsonSafe, currentCommandLine } from '../io/checkpointFile';
import { LIBRARY_ID } from '../io/pipelineManifest';

export const TRAINING_STATE_KIND = 'training-state';

export interface TrainingState {
  /** Optimiser steps taken. */
  step: number;
  /** e.g. 'model.<name>', 'ema.<name>', 'optim.m.<name>', 'optim.v.<name>': the trainer decides the keys. float32/int32 tf tensors. */
  tensors: Map<string, tf.Tensor>;
  /** RNG states, data iterator state, optimiser scalars, config, ...: JSON-safe values only. */
  json: Record<string, unknown>;
}

/** Which trainer wrote a state (metadata 'family'): a resume by another is refused (two families may share file names). */
export type TrainingFamily = 'diffusion' | 'autoencoder' | 'clip' | 'prior';

/** Saves everything needed to resume training exactly (float32, atomic). */
export async function saveTrainingState(file: string, state: TrainingState, family: TrainingFamily): Promise<void> {
  assertInteger(state.step, `${file}: step`, 0);
  assertJsonSafe(state.json, `${file}: training state json`);
  const metadata: Record<string, string> = {
    format_version: CHECKPOINT_FORMAT_VERSION,
    library: LIBRARY_ID,
    layout: TFJS_LAYOUT,
    kind: TRAINING_STATE_KIND,
    family,
    step: String(state.step),
    state: JSON.stringify(state.json),
    command: currentCommandLine(),
  };
  const safe = await fromTfTensors(state.tensors);
  await writeSafetensors(file, safe, metadata, { storage: 'float32' });
}

/**
 * The tensors of a training state stored under `prefix` (e.g. 'model.', 'ema.',
 * 'optim.'), with the prefix removed. The tensors are the state's own (not copies).
 */
export function stateTensorsWithPrefix(state: TrainingState, prefix: string): Map<string, tf.Tensor> {
  return new Map([...state.tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
}

/**
 * Loads a training state; the caller owns (and disposes) the returned tensors. With `family`, a state
 * another trainer wrote is refused (states written before families were recorded pass).
 */
export async function loadTrainingState(file: string, family?: TrainingFamily): Promise<TrainingState> {
  const { tensors, metadata } = await readSafetensors(file);
  const info = parseCheckpointMetadata(metadata, file);
  if (info.kind !== TRAINING_STATE_KIND) throw new Error(`${file}: expected a '${TRAINING_STATE_KIND}' file, got kind '${info.kind}'`);
  if (info.step === null) throw new Error(`${file}: no 'step' in __metadata__`);
  if (family !== undefined && metadata.family !== undefined && metadata.family !== family) {
    throw new Error(`${file}: the training state of a ${metadata.family} run, resumed by the ${family} trainer: is the output folder right?`);
  }
  if (metadata.state === undefined) throw new Error(`${file}: no 'state' in __metadata__`);
  let json: unknown;
  try {
    json = JSON.parse(metadata.state);
  } catch (e) {
    throw new Error(`${file}: metadata 'state' is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: metadata 'state' must be a JSON object`);
  return { step: info.step, tensors: toTfTensors(tensors), json: json as Record<string, unknown> };
}

/** The JSON part of a training state (config, iterator, ...) from the file's header alone: cheap checks before a resume does any work. */
export async function readTrainingStateJson(file: string): Promise<Record<string, unknown>> {
  const { metadata } = await readSafetensorsHeader(file);
  if (metadata.kind !== TRAINING_STATE_KIND) throw new Error(`${file}: expected a '${TRAINING_STATE_KIND}' file, got kind '${String(metadata.kind)}'`);
  let json: unknown;
  try {
    json = JSON.parse(metadata.state ?? '');
  } catch (e) {
    throw new Error(`${file}: metadata 'state' is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: metadata 'state' must be a JSON object`);
  return json as Record<string, unknown>;
}
