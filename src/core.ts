/**
 * tfjs-diffusion's core: everything sampling needs, runnable anywhere (a browser page,
 * a Web Worker, Node). It imports no Node built-in and nothing from training, data
 * loading or the CLI; test/core/bundle.test.ts bundles this file for the browser so the
 * rule cannot rot. Package entry points: `tfjs-diffusion/core` everywhere, and
 * `tfjs-diffusion` under a bundler's `browser` condition. The Node entry (index.ts) adds
 * files, datasets, training and evaluation.
 */

// backend (browser: webgl | webgpu | wasm | cpu)
export { initBrowserBackend as initBackend, BROWSER_BACKEND_CHOICES as BACKEND_CHOICES } from './backend/browserBackend';
export type {
  BrowserBackendChoice as BackendChoice, BrowserBackendInfo as BackendInfo, InitBrowserBackendOptions as InitBackendOptions,
} from './backend/browserBackend';
export { Rng, keyedRng, randomNormal, randomUniform } from './backend/random';
export type { RngState } from './backend/random';

// nn
export { Module } from './nn/module';
export type { ParamLayout } from './nn/module';
export { conv2d, Conv2d } from './nn/conv2d';
export { linear, Linear } from './nn/linear';
export { groupNorm, GroupNorm } from './nn/groupNorm';
export { layerNorm, LayerNorm } from './nn/layerNorm';
export { embeddingLookup, Embedding } from './nn/embedding';
export { multiHeadAttention, SelfAttention, CrossAttention } from './nn/attention';
export { silu, gelu, activation } from './nn/activations';
export { timestepEmbedding } from './nn/timestepEmbedding';

// models and their loaders from bytes
export { UNet, unetConfig, UNET_DEFAULTS } from './models/unet';
export type { UNetConfig, UNetConfigInput } from './models/unet';
export { Autoencoder, autoencoderConfig, autoencoderFromCheckpoint, AUTOENCODER_KIND } from './models/autoencoder';
export type { AutoencoderConfig, AutoencoderCheckpointConfig, LoadedAutoencoder } from './models/autoencoder';
export { TextEncoder, textEncoderConfig, NULL_PROMPT } from './models/textEncoder';
export { ByteTokenizer, tokenizerConfig } from './models/tokenizer';
export type { TokenizerConfig } from './models/tokenizer';
export { Clip, clipConfig, clipFromCheckpoint, CLIP_CHECKPOINT_KIND } from './models/clip';
export { DiffusionPrior, priorConfig, priorFromCheckpoint, samplePriorEmbeddings, PRIOR_CHECKPOINT_KIND } from './models/prior';
export type { LoadedPrior } from './models/prior';

// schedules, samplers, guidance
export { makeSchedule } from './schedule/schedule';
export type { Schedule } from './schedule/schedule';
export { scheduleConfig, SCHEDULE_DEFAULTS } from './schedule/betas';
export type { ScheduleConfig } from './schedule/betas';
export { qSample } from './schedule/noising';
export { sample } from './sample/sample';
export { sampleDdpm } from './sample/ddpm';
export { sampleDdim } from './sample/ddim';
export { sampleDpmSolverPP } from './sample/dpmSolverPP';
export { classifierFreeGuidance } from './sample/guidance';
export { NO_CLIP } from './sample/thresholding';
export type { ClipMode } from './sample/thresholding';
export { SAMPLER_NAMES } from './sample/types';
export type { Cond, Denoiser, SamplerName, SamplerOptions, StepInfo } from './sample/types';

// checkpoints, manifests and pipeline files from bytes
export { parseSafetensors, serializeSafetensors, toTfTensors } from './io/safetensors';
export type { SafeTensor, SafeDType } from './io/safetensors';
export { parseCheckpoint, loadCheckpointWeights } from './io/checkpoint';
export type { Checkpoint, CheckpointInfo } from './io/checkpoint';
export { parsePipelineManifest, PIPELINE_MANIFEST_FILE } from './io/pipelineManifest';
export type { PipelineManifest, PipelineDesign, PipelinePart } from './io/pipelineManifest';
export { filesFromMap, filesFromUrl, readManifest, readPart } from './io/pipelineFiles';
export type { PipelineFiles, FileMap, LoadProgress, UrlFilesOptions } from './io/pipelineFiles';

// images as bytes
export { tensorToImageBytes, makeGrid, toRgba, encodePngBytes } from './io/image';
export type { DecodedImage, GridOptions } from './io/image';

// pipelines: one loader, one generate
export { loadPipeline, loadPipelineFromFiles, pipelineFiles } from './pipelines/loadPipeline';
export type {
  Pipeline, PipelineGenerateOptions, PipelineConditioning, PipelineSource, LoadPipelineOptions, TextPipelineDefaults,
} from './pipelines/loadPipeline';
export type { GenerateProgress, GenerateHooks } from './pipelines/progress';
export { generateFromText, loadTextToImagePipeline, TEXT_GENERATE_DEFAULTS } from './pipelines/textToImage';
export type { TextToImagePipeline, TextGenerateOptions } from './pipelines/textToImage';
export { generateCascade, loadCascadePipeline, CASCADE_GENERATE_DEFAULTS } from './pipelines/cascade';
export type { CascadePipeline, CascadeGenerateOptions } from './pipelines/cascade';
export { generateUnclip, loadUnclipPipeline, UNCLIP_GENERATE_DEFAULTS } from './pipelines/unclip';
export { imageVariations } from './pipelines/unclipVariations';
export type { UnclipPipeline, UnclipGenerateOptions } from './pipelines/unclip';
export { generate, loadPixelPipelineFiles, GENERATE_DEFAULTS } from './pipelines/pixelDiffusion';
export type { PixelPipeline, GenerateOptions } from './pipelines/pixelDiffusion';
export { encodePrompts, textEncoderFromCheckpoint } from './pipelines/textConditioning';
export type { FrozenTextEncoder } from './pipelines/textConditioning';
export { unetDenoiser } from './pipelines/unetDenoiser';
