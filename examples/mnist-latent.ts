/**
 * Text-to-image on MNIST in the latent space of the shipped autoencoder: the
 * Stable Diffusion design at small scale, and the pipeline behind the README's
 * main job (shipped as checkpoints/mnist-latent).
 *
 *   npx tsx examples/mnist-latent.ts                        # train (resumes if runs/mnist-latent exists)
 *   npx tsx examples/mnist-latent.ts --steps 20 --limit 512 --out /tmp/latent-smoke --fresh   # a smoke run
 *
 * Parts: the CLIP text tower of checkpoints/mnist-clip (examples/train-clip.ts
 * --attributes) and the autoencoder of checkpoints/mnist-autoencoder
 * (examples/mnist-autoencoder.ts), both frozen; the UNet on 8x8x4 latents is
 * trained here. Captions carry measured attribute words ("a thick 3", "the
 * digit seven, slanted left"). Model and objective: examples/text-to-image.ts.
 */
import { digitPrompts } from '../src/eval/clipScore';
import { runMain, runTextToImageExample } from './text-to-image';

runMain(() =>
  runTextToImageExample({
    script: 'mnist-latent.ts',
    dataset: 'mnist',
    space: 'latent',
    attributes: true,
    textEncoder: 'checkpoints/mnist-clip/clip.safetensors',
    autoencoder: 'checkpoints/mnist-autoencoder/autoencoder.safetensors',
    out: 'runs/mnist-latent',
    gridPrompts: [...digitPrompts('a handwritten {n}'), 'a thick 3', 'a thin 3', 'a small 8', 'a large 8'],
  }),
);
