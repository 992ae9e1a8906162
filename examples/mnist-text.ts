/**
 * Text-to-image on MNIST in pixel space (32x32, the Imagen base-model design at
 * small scale): the same UNet widths, text encoder and objective as
 * examples/mnist-latent.ts, on pixels instead of latents.
 *
 *   npx tsx examples/mnist-text.ts                         # train (resumes if runs/mnist-text exists)
 *   npx tsx examples/mnist-text.ts --steps 20 --limit 512 --out /tmp/text-smoke --fresh
 *
 * Parts: the CLIP text tower of checkpoints/mnist-clip (frozen); the UNet is
 * trained here. Model and objective: examples/text-to-image.ts.
 */
import { digitPrompts } from '../src/eval/clipScore';
import { runMain, runTextToImageExample } from './text-to-image';

runMain(() =>
  runTextToImageExample({
    script: 'mnist-text.ts',
    dataset: 'mnist',
    space: 'pixel',
    attributes: true,
    textEncoder: 'checkpoints/mnist-clip/clip.safetensors',
    out: 'runs/mnist-text',
    gridPrompts: [...digitPrompts('a handwritten {n}'), 'a thick 3', 'a thin 3', 'a small 8', 'a large 8'],
  }),
);
