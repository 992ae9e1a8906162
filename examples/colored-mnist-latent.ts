/**
 * Text-to-image on Colored MNIST ("a red 3 on a blue background", 32x32x3) in
 * the latent space of an autoencoder trained on it: the Stable Diffusion design
 * on the compositional benchmark (examples/colored-mnist-text.ts is the same in
 * pixel space). Held-out (digit, colour, background) triples never appear in
 * training, neither here nor in the CLIP or the autoencoder; the grid asks for
 * some of them (last rows).
 *
 * Three parts, three commands, in this order:
 *   1. the CLIP whose text tower conditions the UNet (frozen):
 *        npx tsx examples/train-clip.ts --dataset colored-mnist --out runs/clip-colored
 *   2. the KL autoencoder, 32x32x3 -> 8x8x4, latent scale factor in its metadata (frozen):
 *        npx tfjs-diffusion train-autoencoder --dataset colored-mnist --features colored-mnist --out runs/colored-mnist-autoencoder
 *   3. the UNet on its latents, trained here (resumes if runs/colored-mnist-latent exists):
 *        npx tsx examples/colored-mnist-latent.ts
 *
 * All three draw the colours with seed 0 and train on the 'seen' triples only.
 * Model and objective: examples/text-to-image.ts.
 */
import { coloredMnistPrompt, COLORED_MNIST_HELD_OUT } from '../src/data/coloredMnist';
import { runMain, runTextToImageExample } from './text-to-image';

const seen = [[3, 0, 1], [7, 2, 0], [1, 4, 2], [8, 6, 3]].map(([d, c, b]) => coloredMnistPrompt(d, c, b));
const heldOut = COLORED_MNIST_HELD_OUT.slice(0, 4).map((h) => coloredMnistPrompt(h.digit, h.color, h.background));

runMain(() =>
  runTextToImageExample({
    script: 'colored-mnist-latent.ts',
    dataset: 'colored-mnist',
    space: 'latent',
    attributes: false,
    textEncoder: 'runs/clip-colored/clip.safetensors',
    autoencoder: 'runs/colored-mnist-autoencoder/autoencoder.safetensors',
    out: 'runs/colored-mnist-latent',
    gridPrompts: [...seen, ...heldOut],
  }),
);
