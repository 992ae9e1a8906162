/**
 * Pipeline part files on disk (Node): the frozen text encoder and UNet stages read
 * from a path, and written (what a pipeline folder ships). The core reads the same
 * parts from bytes (pipelines/textConditioning.ts, pipelines/textToImage.ts).
 */
import { UNet } from '../models/unet';
import { Clip, clipFromCheckpoint } from '../models/clip';
import { LoadedPrior, priorFromCheckpoint } from '../models/prior';
import { autoencoderFromCheckpoint, LoadedAutoencoder } from '../models/autoencoder';
import { TorchUNetFile, torchUNetFromSafetensors } from '../models/unetTorch';
import { readSafetensors } from '../io/safetensorsFile';
import { TEXT_ENCODER_KIND, FrozenTextEncoder, textEncoderFromCheckpoint } from '../pipelines/textConditioning';
import { stageUNetFromCheckpoint, TextUNetCheckpointConfig } from '../pipelines/textToImage';
import { ClipProvenance, clipProvenanceOf } from '../pipelines/unclipConfig';
import { readCheckpointFile, readModelConfig, saveModelWeights } from '../io/checkpointFile';

/** Loads the frozen text tower from a 'text-encoder' or a 'clip' checkpoint file. */
export async function loadTextEncoder(file: string): Promise<FrozenTextEncoder> {
  return textEncoderFromCheckpoint(await readCheckpointFile(file));
}

/** Writes the tower alone as a 'text-encoder' checkpoint (what a pipeline folder ships). */
export async function saveTextEncoder(
  file: string,
  text: FrozenTextEncoder,
  options: { command?: string; storage?: 'float32' | 'float16'; step?: number; seed?: number } = {},
): Promise<void> {
  await saveModelWeights(file, text.encoder, {
    kind: TEXT_ENCODER_KIND,
    config: { text: text.config.text, tokenizer: text.config.tokenizer, trainedAs: text.source },
    step: options.step,
    seed: options.seed,
    command: options.command,
    storage: options.storage,
  });
}

/** Reads, validates and builds a text-conditional UNet file (a cascade stage, an unclip decoder or SR stage). */
export async function loadStageUNet(file: string): Promise<{ unet: UNet; config: TextUNetCheckpointConfig }> {
  return stageUNetFromCheckpoint(await readCheckpointFile(file));
}

/** Re-saves a UNet checkpoint (weights, config, step, seed and training command kept) with the chosen storage. */
export async function copyUNet(from: string, to: string, storage: 'float32' | 'float16'): Promise<void> {
  const info = await readModelConfig(from);
  const { unet } = await loadStageUNet(from);
  try {
    await saveModelWeights(to, unet, {
      kind: 'unet', config: info.config, step: info.step ?? undefined, seed: info.seed ?? undefined, command: info.command ?? undefined, storage,
    });
  } finally {
    unet.dispose();
  }
}

/** The provenance of a CLIP checkpoint file (its config, step and seed). */
export async function clipProvenance(file: string): Promise<ClipProvenance> {
  return clipProvenanceOf(await readModelConfig(file), file);
}

/** Loads a safetensors file written by the PyTorch peer (`--export-reference`; see torchUNetFromSafetensors). */
export async function loadTorchUNet(path: string): Promise<TorchUNetFile> {
  return torchUNetFromSafetensors(await readSafetensors(path), path);
}

/** Loads a CLIP saved by trainClip (rebuilt from the config in its metadata). */
export async function loadClip(file: string): Promise<Clip> {
  return clipFromCheckpoint(await readCheckpointFile(file));
}

/** Loads a prior saved by trainPrior (Node; see priorFromCheckpoint). */
export async function loadPrior(file: string): Promise<LoadedPrior> {
  return priorFromCheckpoint(await readCheckpointFile(file));
}

/** Rebuilds an autoencoder from its weight file (Node; see autoencoderFromCheckpoint). The caller disposes the model. */
export async function loadAutoencoder(file: string): Promise<LoadedAutoencoder> {
  return autoencoderFromCheckpoint(await readCheckpointFile(file));
}
