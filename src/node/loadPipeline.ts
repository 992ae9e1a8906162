/**
 * `loadPipeline` of the Node entry: the core's (a base URL, a map of bytes, PipelineFiles)
 * plus a folder path, which is what a string that is not an http(s) URL means here.
 * A folder's manifest is checked as on disk (every part inside the folder, also after
 * symlinks, with a readable header of the manifest's kind) before anything loads.
 */
import * as fs from 'fs';
import * as path from 'path';
import { folderFiles, readPipelineManifest } from '../io/pipeline';
import { PIPELINE_MANIFEST_FILE } from '../io/pipelineManifest';
import { readCheckpointFile } from '../io/checkpointFile';
import {
  LoadPipelineOptions, loadPipeline as loadPipelineCore, loadPipelineFromFiles, Pipeline, PipelineSource,
} from '../pipelines/loadPipeline';
import { loadPixelPipelineFiles, PixelPipeline, pixelPipelineFromCheckpoint } from '../pipelines/pixelDiffusion';

const URL_PATTERN = /^https?:\/\//i;

/** Loads a pipeline folder from disk (see loadPipelineFromFiles). */
export async function loadPipelineFolder(dir: string, options: Pick<LoadPipelineOptions, 'onProgress'> = {}): Promise<Pipeline> {
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no such pipeline folder`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir}: not a folder (a pipeline is a folder with ${PIPELINE_MANIFEST_FILE})`);
  if (!fs.existsSync(path.join(dir, PIPELINE_MANIFEST_FILE))) throw new Error(`${dir}: no ${PIPELINE_MANIFEST_FILE} (not a pipeline folder)`);
  return loadPipelineFromFiles(folderFiles(dir, options.onProgress), await readPipelineManifest(dir));
}

/**
 * Loads a pipeline of any design: a folder path, an http(s) base URL, a map of file
 * name -> bytes, or PipelineFiles.
 */
export async function loadPipeline(source: PipelineSource, options: LoadPipelineOptions = {}): Promise<Pipeline> {
  if (typeof source === 'string' && !URL_PATTERN.test(source)) return loadPipelineFolder(source, options);
  return loadPipelineCore(source, options);
}

/**
 * Loads a text-to-image pipeline folder of any design.
 * @deprecated use loadPipeline, which opens every design and conditioning.
 */
export async function loadTextPipeline(dir: string): Promise<Pipeline> {
  const p = await loadPipelineFolder(dir);
  if (p.conditioning !== 'text') {
    p.dispose();
    throw new Error(`${path.join(dir, PIPELINE_MANIFEST_FILE)}: a ${p.design} pipeline without a 'text_encoder' part is not text-to-image (a class-conditional pipeline: use loadPixelPipeline)`);
  }
  return p;
}

/** A class-conditional pixel pipeline from a pipeline folder or a bare UNet .safetensors file (no manifest defaults then). */
export async function loadPixelPipeline(pathOrDir: string): Promise<PixelPipeline> {
  if (!fs.existsSync(pathOrDir)) throw new Error(`${pathOrDir}: no such file or folder`);
  if (fs.statSync(pathOrDir).isDirectory()) {
    if (!fs.existsSync(path.join(pathOrDir, PIPELINE_MANIFEST_FILE))) {
      throw new Error(`${pathOrDir}: a folder must contain ${PIPELINE_MANIFEST_FILE} (a pipeline), or pass the .safetensors file itself`);
    }
    return loadPixelPipelineFiles(folderFiles(pathOrDir), await readPipelineManifest(pathOrDir));
  }
  return pixelPipelineFromCheckpoint(await readCheckpointFile(pathOrDir));
}
