/**
 * tfjs-diffusion: public API of the Node entry. Every export is named here; internals
 * stay in their modules. The core (./core.ts: sampling, runs anywhere) is exported here
 * too, with Node's own backend selection and folder-aware loadPipeline in place of the
 * browser's.
 */

// backend
export { initBackend, shutdownBackend, BACKEND_CHOICES } from './backend/backend';
export type { BackendChoice, BackendInfo, InitBackendOptions } from './backend/backend';
export { Rng, keyedRng, randomNormal, randomUniform } from './backend/random';
export type { RngState } from './backend/random';
export { measureStepMemory, assertBatchFits, maxBatchThatFits, predictPeakBytes, WASM_HEAP_LIMIT_BYTES } from './backend/memory';
export type { MemoryEstimate } from './backend/memory';

// nn
export { Module } from './nn/module';
export type { ParamLayout } from './nn/module';
export { conv2d, Conv2d } from './nn/conv2d';
export type { Conv2dArgs, Conv2dOptions, ConvPadding } from './nn/conv2d';
export { linear, Linear } from './nn/linear';
export type { LinearArgs } from './nn/linear';
export { groupNorm, GroupNorm } from './nn/groupNorm';
export { layerNorm, LayerNorm } from './nn/layerNorm';
export { embeddingLookup, Embedding } from './nn/embedding';
export { multiHeadAttention, SelfAttention, CrossAttention } from './nn/attention';
export { silu, gelu, activation } from './nn/activations';
export type { Activation } from './nn/activations';
export { dropout } from './nn/dropout';
export { upsampleNearest2x } from './nn/upsample';
export { timestepEmbedding } from './nn/timestepEmbedding';

// models
export { UNet, unetConfig, UNET_DEFAULTS, levelResolutions } from './models/unet';
export type { UNetConfig, UNetConfigInput, UNetInputs } from './models/unet';
export { UNET_PRESETS, UNET_PRESET_NAMES } from './models/unetPresets';
export type { UNetPreset } from './models/unetPresets';
export { unetConfigFromPeer, importTorchUNetWeights } from './models/unetTorch';
export { loadTorchUNet } from './node/pipelineParts';

// schedules and noising
export { makeSchedule, tableAt } from './schedule/schedule';
export type { Schedule } from './schedule/schedule';
export { scheduleConfig, makeBetas, rescaleZeroTerminalSnr, SCHEDULE_DEFAULTS, SCHEDULE_KINDS } from './schedule/betas';
export type { ScheduleConfig, ScheduleKind } from './schedule/betas';
export { qSample } from './schedule/noising';
export {
  predictX0FromEps, predictEpsFromX0, vTarget, predictX0FromV, predictEpsFromV, trainingTarget, modelOutputToX0AndEps, PREDICTION_TYPES,
} from './schedule/parameterization';
export type { PredictionType } from './schedule/parameterization';

// samplers
export { sample } from './sample/sample';
export { sampleDdpm } from './sample/ddpm';
export { sampleDdim } from './sample/ddim';
export { sampleDpmSolverPP } from './sample/dpmSolverPP';
export { classifierFreeGuidance } from './sample/guidance';
export { clipX0, NO_CLIP } from './sample/thresholding';
export type { ClipMode } from './sample/thresholding';
export { samplingTimesteps } from './sample/timesteps';
export { noiseForBatch } from './sample/noise';
export { SAMPLER_NAMES } from './sample/types';
export type { Cond, Denoiser, SamplerName, SamplerOptions, StepInfo } from './sample/types';

// training
export { trainDiffusion, STATE_FILE, METRICS_FILE } from './train/diffusionTraining';
export { WEIGHTS_FILE } from './io/checkpoint';
export type { TrainDiffusionOptions, TrainResult, MetricsRow } from './train/diffusionTraining';
export { trainConfig, TRAIN_DEFAULTS } from './train/trainConfig';
export { BudgetClock, readBudgetRecord } from './train/timeBudget';
export type { BudgetRecord, BudgetClockOptions } from './train/timeBudget';
export type { TrainConfig } from './train/trainConfig';
export { AdamW, ADAMW_DEFAULTS } from './train/adamw';
export type { AdamWConfig } from './train/adamw';
export { emaDecay, updateEma, EMA_DEFAULTS } from './train/ema';
export { learningRate } from './train/lr';
export { diffusionLoss, minSnrWeights } from './train/losses';
export { conditionDropMask, dropLabels, dropContext } from './train/cfgDropout';
export { saveTrainingState, loadTrainingState } from './train/checkpoint';
export { saveModelWeights, loadModelWeights, readModelConfig } from './io/checkpointFile';
export type { TrainingState } from './train/checkpoint';
export type { CheckpointInfo } from './io/checkpoint';
export { ProgressReporter } from './train/progress';

// data
export { loadDataset, DATASET_NAMES } from './data/load';
export type { DatasetName } from './data/load';
export type { ImageDataset, DatasetSplit } from './data/dataset';
export { BatchIterator, fixedBatch } from './data/batches';
export type { Batch, BatchIteratorState } from './data/batches';
export { loadMnist } from './data/mnist';
export { loadFashionMnist } from './data/fashionMnist';
export { loadCifar10 } from './data/cifar10';
export { loadImageFolder } from './data/imageFolder';

// io
export { parseSafetensors, serializeSafetensors, toTfTensors, fromTfTensors } from './io/safetensors';
export { readSafetensors, writeSafetensors } from './io/safetensorsFile';
export type { SafeTensor, SafeDType } from './io/safetensors';
export { toTorchLayout, fromTorchLayout } from './io/torchLayout';
export { readPipelineManifest, writePipelineManifest } from './io/pipeline';
export type { PipelineManifest, PipelineDesign } from './io/pipelineManifest';
export { savePng, loadPng, loadPngTensor, saveImageGrid, saveImages } from './io/png';
export { saveLinePlot } from './io/plot';

// evaluation
export { frechetDistance, symmetricEigen } from './eval/frechet';
export type { FrechetResult } from './eval/frechet';
export { FeatureStats } from './eval/featureStats';
export type { GaussianStats } from './eval/featureStats';
export { kernelInceptionDistance } from './eval/kid';
export { Classifier, loadClassifier } from './eval/classifier';
export { trainClassifier } from './eval/trainClassifier';
export { loadFeatureExtractor } from './eval/features';
export type { FeatureExtractor } from './eval/features';
export { conditionalAccuracy, classify } from './eval/conditionalAccuracy';
export { extractSourceFeatures, imageFolderSource, datasetSource } from './eval/imageFolderStats';
export { clipScore, zeroShotAccuracy } from './eval/clipScore';

// text
export { ByteTokenizer, learnBpeMerges, tokenizerConfig } from './models/tokenizer';
export type { TokenizerConfig } from './models/tokenizer';
export { TextEncoder, textEncoderConfig, TEXT_ENCODER_DEFAULTS, encodeCaptionsCached, CaptionStateCache } from './models/textEncoder';
export { Clip, clipConfig, CLIP_DEFAULTS } from './models/clip';
export { trainClip, trainClipOnDataset } from './train/clipTraining';
export { loadClip } from './node/pipelineParts';
export { captionDataset } from './data/captions';
export { loadCaptionedDataset, CAPTIONED_DATASETS } from './data/captioned';
export type { CaptionedDatasetName } from './data/captioned';
export { loadColoredMnist } from './data/coloredMnist';

// autoencoder (the latent-diffusion decoder)
export { Autoencoder, autoencoderConfig, AUTOENCODER_DEFAULTS, klDivergence } from './models/autoencoder';
export type { AutoencoderConfig } from './models/autoencoder';
export { trainAutoencoder, evaluateAutoencoder, autoencoderTrainConfig } from './train/autoencoderTraining';
export { loadAutoencoder } from './node/pipelineParts';
export { computeLatentScale, readScaleFactor } from './train/latentScale';
export { evaluateReconstruction, psnrFromMse } from './eval/reconstruction';

// pipelines
export { generate, GENERATE_DEFAULTS } from './pipelines/pixelDiffusion';
export { loadPixelPipeline } from './node/loadPipeline';
export type { PixelPipeline, GenerateOptions } from './pipelines/pixelDiffusion';
export { trainPixelDiffusion } from './recipes/pixelTraining';
export type { PixelTrainingOptions } from './recipes/pixelTraining';
export { unetDenoiser } from './pipelines/unetDenoiser';
export { evaluatePixelPipeline } from './eval/evaluatePixel';
export type { PixelEvalResult } from './eval/evaluatePixel';
export { loadTextToImagePipeline, generateFromText, TEXT_GENERATE_DEFAULTS } from './pipelines/textToImage';
export { writeTextPipeline } from './node/writePipeline';
export type { TextToImagePipeline, TextGenerateOptions, TextUNetCheckpointConfig } from './pipelines/textToImage';
export type { TextPipelineAssembly } from './node/writePipeline';
export { trainTextDiffusion } from './recipes/textTraining';
export type { TextTrainingOptions } from './recipes/textTraining';
export { encodePrompts } from './pipelines/textConditioning';
export { loadTextEncoder, saveTextEncoder } from './node/pipelineParts';
export type { FrozenTextEncoder } from './pipelines/textConditioning';
export { encodeLatentDataset, cachedLatentDataset } from './recipes/latentData';
export { evaluateTextPipeline, attributeAgreement } from './eval/evaluateText';
export type { TextEvalResult } from './eval/evaluateText';
export { NULL_PROMPT } from './models/textEncoder';
export type { ImageEmbeddingTable } from './train/diffusionTraining';
export { loadPipeline, loadPipelineFolder, loadTextPipeline } from './node/loadPipeline';
export { loadPipelineFromFiles, pipelineFiles } from './pipelines/loadPipeline';
export type {
  Pipeline, PipelineGenerateOptions, PipelineConditioning, PipelineSource, LoadPipelineOptions, TextPipeline, TextPipelineGenerateOptions,
} from './pipelines/loadPipeline';
export type { GenerateProgress, GenerateHooks } from './pipelines/progress';
export { folderFiles } from './io/pipeline';
export { filesFromMap, filesFromUrl, readManifest, readPart } from './io/pipelineFiles';
export type { PipelineFiles, FileMap, LoadProgress } from './io/pipelineFiles';
export { parseCheckpoint, loadCheckpointWeights } from './io/checkpoint';
export type { Checkpoint } from './io/checkpoint';
export { readCheckpointFile } from './io/checkpointFile';
export { tensorToImageBytes, makeGrid, toRgba, encodePngBytes } from './io/image';
export { autoencoderFromCheckpoint } from './models/autoencoder';
export { clipFromCheckpoint } from './models/clip';
export { priorFromCheckpoint } from './models/prior';
export { textEncoderFromCheckpoint } from './pipelines/textConditioning';

// Imagen-style cascade
export { loadCascadePipeline, generateCascade, superResolveBatch, CASCADE_GENERATE_DEFAULTS } from './pipelines/cascade';
export { writeCascadePipeline } from './node/writePipeline';
export type { CascadePipeline, CascadeGenerateOptions } from './pipelines/cascade';
export { lowResConfig, lowResOf, augmentLowRes, LOW_RES_DEFAULTS } from './sample/lowResConditioning';
export type { LowResConfig } from './sample/lowResConditioning';
export { downsampleDataset } from './data/resize';

// DALL-E 2-style prior
export { DiffusionPrior, priorConfig, PRIOR_DEFAULTS, priorDenoiser, priorCond, priorNullCond, samplePriorEmbeddings } from './models/prior';
export type { PriorConfig } from './models/prior';
export { clipEmbeddingPairs, trainPrior, priorTrainConfig, validatePrior } from './train/priorTraining';
export { loadPrior } from './node/pipelineParts';
export type { EmbeddingPairs, PriorTrainConfig } from './train/priorTraining';

// DALL-E 2-style unCLIP pipeline
export { loadUnclipPipeline, generateUnclip, clipTextTower, UNCLIP_GENERATE_DEFAULTS } from './pipelines/unclip';
export { imageVariations } from './pipelines/unclipVariations';
export { checkUnclipSuperResolution } from './pipelines/unclipConfig';
export { writeUnclipPipeline } from './node/writePipeline';
export type { UnclipPipeline, UnclipGenerateOptions } from './pipelines/unclip';
export { trainUnclipDecoder, trainUnclipPrior } from './recipes/unclipTraining';
