/**
 * Importing the PyTorch peer's UNet (/work/shared/peers/torch_unet.py).
 *
 * The peer's state_dict names are our parameter names (models/unet.ts builds the
 * same module tree), so import is: check names, convert layouts (conv OIHW -> HWIO,
 * Linear [out, in] -> [in, out], io/torchLayout.ts), assign. Its config travels as
 * JSON in the safetensors `__metadata__.config`:
 *
 *   peer key   UNetConfig field          peer key   UNetConfig field
 *   channels   inChannels = outChannels  heads      heads
 *   size       sampleSize                groups     groups
 *   base       baseChannels              temb_in    timeEmbeddingInputDim
 *   mults      channelMults              temb_dim   timeEmbeddingDim
 *   num_res    numResBlocks              ctx_dim    contextDim (null = none)
 *   attn_res   attentionResolutions      ctx_len    (not part of the network)
 *
 * The peer has no class embedding, no pooled-context term, no dropout, and
 * predicts epsilon.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../backend/random';
import { fromTorchLayout } from '../io/torchLayout';
import { SafetensorsFile, toTfTensors } from '../io/safetensors';
import { UNet, UNetConfig, unetConfig } from './unet';

/** The peer's config as written by `torch_unet.py --export-reference`. */
export interface PeerUNetConfig {
  readonly channels: number;
  readonly size: number;
  readonly base: number;
  readonly mults: readonly number[];
  readonly num_res: number;
  readonly attn_res: readonly number[];
  readonly heads: number;
  readonly groups: number;
  readonly temb_in: number;
  readonly temb_dim: number;
  readonly ctx_dim: number | null;
  readonly ctx_len?: number;
}

const PEER_NUMBER_KEYS = ['channels', 'size', 'base', 'num_res', 'heads', 'groups', 'temb_in', 'temb_dim'] as const;

/** Maps the peer's config (object or its JSON text) to a validated UNetConfig. */
export function unetConfigFromPeer(peer: PeerUNetConfig | string): UNetConfig {
  const p: unknown = typeof peer === 'string' ? JSON.parse(peer) : peer;
  if (typeof p !== 'object' || p === null) throw new Error(`unetConfigFromPeer: expected a config object, got ${JSON.stringify(p)}`);
  const o = p as Record<string, unknown>;
  for (const k of PEER_NUMBER_KEYS) {
    if (typeof o[k] !== 'number') throw new Error(`unetConfigFromPeer: '${k}' must be a number, got ${JSON.stringify(o[k])}`);
  }
  for (const k of ['mults', 'attn_res'] as const) {
    if (!Array.isArray(o[k]) || !(o[k] as unknown[]).every((v) => typeof v === 'number')) {
      throw new Error(`unetConfigFromPeer: '${k}' must be a list of numbers, got ${JSON.stringify(o[k])}`);
    }
  }
  if (o.ctx_dim !== null && typeof o.ctx_dim !== 'number') throw new Error(`unetConfigFromPeer: 'ctx_dim' must be a number or null, got ${JSON.stringify(o.ctx_dim)}`);
  const c = o as unknown as PeerUNetConfig;
  return unetConfig({
    inChannels: c.channels,
    outChannels: c.channels,
    sampleSize: c.size,
    baseChannels: c.base,
    channelMults: [...c.mults],
    numResBlocks: c.num_res,
    attentionResolutions: [...c.attn_res],
    heads: c.heads,
    groups: c.groups,
    dropout: 0,
    timeEmbeddingInputDim: c.temb_in,
    timeEmbeddingDim: c.temb_dim,
    contextDim: c.ctx_dim,
    numClasses: null,
    addPooledContextToTime: false,
    predictionType: 'epsilon',
  });
}

/**
 * Assigns PyTorch-layout weights (peer state_dict names) to `unet`. Every
 * parameter must be present with its PyTorch shape, and no other name may be;
 * the inputs are not disposed.
 */
export function importTorchUNetWeights(unet: UNet, tensors: ReadonlyMap<string, tf.Tensor>, options: { source?: string } = {}): void {
  const where = options.source !== undefined ? ` (${options.source})` : '';
  const layouts = unet.parameterLayouts();
  const unknown = [...tensors.keys()].filter((n) => !layouts.has(n));
  if (unknown.length > 0) {
    throw new Error(`importTorchUNetWeights${where}: ${unknown.length} tensor(s) are not parameters of this UNet: ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', ...' : ''}`);
  }
  const converted = fromTorchLayout(tensors, layouts);
  try {
    unet.loadStateDict(converted, { strict: true, source: options.source });
  } finally {
    converted.forEach((t) => t.dispose());
  }
}

/** A peer checkpoint: the model with its weights, and the non-parameter tensors of the file (caller disposes). */
export interface TorchUNetFile {
  readonly unet: UNet;
  readonly config: UNetConfig;
  /** Tensors that are not parameters (e.g. `input.x`, `input.t`, `output` of a reference file), torch layouts. */
  readonly extras: Map<string, tf.Tensor>;
}

/**
 * A safetensors file written by the peer (`--export-reference`), parsed: builds the
 * UNet from `__metadata__.config`, imports the weights, returns the other tensors.
 * `path` names the file in errors.
 */
export function torchUNetFromSafetensors(file: SafetensorsFile, path: string): TorchUNetFile {
  const json = file.metadata.config;
  if (json === undefined) throw new Error(`${path}: no 'config' in __metadata__ (expected the peer's architecture JSON)`);
  const config = unetConfigFromPeer(json);
  const unet = new UNet(config, new Rng('torch-import')); // init is overwritten by the import
  const all = toTfTensors(file.tensors);
  const params = new Map<string, tf.Tensor>();
  const extras = new Map<string, tf.Tensor>();
  const names = new Set(unet.parameterLayouts().keys());
  all.forEach((t, n) => (names.has(n) ? params : extras).set(n, t));
  try {
    importTorchUNetWeights(unet, params, { source: path });
  } catch (e) {
    unet.dispose();
    extras.forEach((t) => t.dispose());
    throw e;
  } finally {
    params.forEach((t) => t.dispose());
  }
  return { unet, config, extras };
}
