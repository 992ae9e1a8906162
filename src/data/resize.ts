/**
 * A smaller copy of a uint8 image dataset: the data of the base model of an
 * Imagen-style cascade (the super-resolution stage trains on the full size).
 *
 *   padded = centre-pad(image, padTo)         black (0) border, as batches.ts pads with -1 = pixel 0
 *   small  = round(mean of each f x f block)  the low-res image the SR stage is conditioned on
 *
 * E.g. MNIST 28x28 -> padTo 32 -> factor 2 -> 16x16. The block mean is the
 * average pooling sample/lowResConditioning.ts applies to the SR stage's
 * (padded) training images, so the base model learns the distribution the SR
 * stage is conditioned on (up to the rounding to uint8, < 0.5 / 255).
 */
import { ImageDataset, pixelsOf, validateDataset } from './dataset';

export interface DownsampleOptions {
  /** Centre-pad height and width to padTo x padTo with black first (default: no padding). */
  readonly padTo?: number;
  /** Side reduction: each f x f block becomes one pixel (integer >= 1). */
  readonly factor: number;
}

/** The dataset padded and block-averaged (labels and captions kept; the name gets the new size appended). */
export function downsampleDataset(d: ImageDataset, options: DownsampleOptions): ImageDataset {
  const where = `downsampleDataset('${d.name}')`;
  const src = pixelsOf(d, where);
  const { factor: f } = options;
  if (!Number.isInteger(f) || f < 1) throw new Error(`${where}: factor must be an integer >= 1, got ${f}`);
  const ph = options.padTo ?? d.height;
  const pw = options.padTo ?? d.width;
  if (options.padTo !== undefined && (!Number.isInteger(options.padTo) || options.padTo < d.height || options.padTo < d.width)) {
    throw new Error(`${where}: padTo must be an integer >= the image size ${d.height}x${d.width}, got ${options.padTo}`);
  }
  if (ph % f !== 0 || pw % f !== 0) throw new Error(`${where}: the ${options.padTo === undefined ? '' : 'padded '}size ${ph}x${pw} is not divisible by factor ${f}`);
  const { height: h, width: w, channels: c, count } = d;
  const top = Math.floor((ph - h) / 2);
  const left = Math.floor((pw - w) / 2);
  const oh = ph / f;
  const ow = pw / f;
  const out = new Uint8Array(count * oh * ow * c);
  const inv = 1 / (f * f);
  for (let n = 0; n < count; n++) {
    const srcImage = n * h * w * c;
    const dstImage = n * oh * ow * c;
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let k = 0; k < c; k++) {
          let sum = 0;
          for (let dy = 0; dy < f; dy++) {
            const y = oy * f + dy - top; // row in the unpadded image
            if (y < 0 || y >= h) continue; // padding: black, adds 0
            for (let dx = 0; dx < f; dx++) {
              const x = ox * f + dx - left;
              if (x >= 0 && x < w) sum += src[srcImage + (y * w + x) * c + k];
            }
          }
          out[dstImage + (oy * ow + ox) * c + k] = Math.round(sum * inv);
        }
      }
    }
  }
  return validateDataset({ ...d, name: `${d.name}-${oh}x${ow}`, images: out, height: oh, width: ow });
}
