/**
 * Named UNet sizes for 32x32 pixel models, so commands and examples can say
 * `--model small` instead of six numbers. Channels, classes and the prediction
 * type are set by the caller; these fix width and depth only.
 */
import { UNetConfigInput } from './unet';

export type UNetPreset = 'tiny' | 'small' | 'peer';
export const UNET_PRESETS: Readonly<Record<UNetPreset, UNetConfigInput>> = {
  /** ~0.3M parameters: tests and smoke runs. */
  tiny: { baseChannels: 16, channelMults: [1, 2, 2], numResBlocks: 1, attentionResolutions: [8], heads: 4, timeEmbeddingDim: 64 },
  /** ~1M parameters: the shipped MNIST models (one ResBlock per level keeps a step cheap on 2 cores). */
  small: { baseChannels: 32, channelMults: [1, 2, 2], numResBlocks: 1, attentionResolutions: [8], heads: 4, timeEmbeddingDim: 128 },
  /** The PyTorch peer's benchmark UNet (1.62M parameters at 1 channel, 2 ResBlocks per level). */
  peer: { baseChannels: 32, channelMults: [1, 2, 2], numResBlocks: 2, attentionResolutions: [8], heads: 4, timeEmbeddingDim: 128 },
};

export const UNET_PRESET_NAMES = Object.keys(UNET_PRESETS) as UNetPreset[];

export function isUNetPreset(name: string): name is UNetPreset {
  return (UNET_PRESET_NAMES as string[]).includes(name);
}
