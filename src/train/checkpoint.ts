/**
 * Training state files (Node): what an exact resume after a kill reads. A second
 * safetensors file beside the weights with kind 'training-state', the tensors the
 * trainer chose (model, EMA, optimiser moments) stored in float32, and everything else
 * (RNG states, data position, optimiser scalars, ...) as one JSON string under the
 * metadata key `state`. Written atomically (io/atomicWrite.ts): a kill mid-save leaves
 * the previous file. Model weights on disk: io/checkpointFile.ts.
 */
import { fromTfTensors, toTfTensors } from '../io/safetensors';
import { CHECKPOINT_FORMAT_VERSION, parseCheckpointMetadata, TFJS_LAYOUT } from '../io/checkpoint';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../io/safetensorsFile';
import { assertInteger, assertJsonSafe, currentCommandLine } from '../io/checkpointFile';
import { LIBRARY_ID } from '../io/pipelineManifest';
import type { TrainingState, TrainingFamily } from './runStore';

export const TRAINING_STATE_KIND = 'training-state';

export type { TrainingState, TrainingFamily } from './runStore';
export { stateTensorsWithPrefix } from './runStore';

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
export async function readTrainingStateJson(file: string, family?: TrainingFamily): Promise<Record<string, unknown>> {
  const { metadata } = await readSafetensorsHeader(file);
  if (metadata.kind !== TRAINING_STATE_KIND) throw new Error(`${file}: expected a '${TRAINING_STATE_KIND}' file, got kind '${String(metadata.kind)}'`);
  if (family !== undefined && metadata.family !== undefined && metadata.family !== family) {
    throw new Error(`${file}: the training state of a ${metadata.family} run, resumed by the ${family} trainer: is the output folder right?`);
  }
  let json: unknown;
  try {
    json = JSON.parse(metadata.state ?? '');
  } catch (e) {
    throw new Error(`${file}: metadata 'state' is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file}: metadata 'state' must be a JSON object`);
  return json as Record<string, unknown>;
}
