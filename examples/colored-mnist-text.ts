/**
 * Text-to-image on Colored MNIST (32x32x3, digit colour and background colour
 * named in the caption: "a red 3 on a blue background"), in pixel space: the
 * compositional benchmark. Held-out (digit, colour, background) triples never
 * appear in training; the grid asks for some of them (last rows).
 *
 * First train its CLIP (the text tower conditions the UNet, frozen):
 *   npx tsx examples/train-clip.ts --dataset colored-mnist --out runs/clip-colored
 * then:
 *   npx tsx examples/colored-mnist-text.ts --text-encoder runs/clip-colored/clip.safetensors
 *
 * Model and objective: examples/text-to-image.ts.
 */
import { coloredMnistPrompt, COLORED_MNIST_HELD_OUT } from '../src/data/coloredMnist';
import { runMain, runTextToImageExample } from './text-to-image';

const seen = [[3, 0, 1], [7, 2, 0], [1, 4, 2], [8, 6, 3]].map(([d, c, b]) => coloredMnistPrompt(d, c, b));
const heldOut = COLORED_MNIST_HELD_OUT.slice(0, 4).map((h) => coloredMnistPrompt(h.digit, h.color, h.background));

runMain(() =>
  runTextToImageExample({
    script: 'colored-mnist-text.ts',
    dataset: 'colored-mnist',
    space: 'pixel',
    attributes: false,
    textEncoder: 'runs/clip-colored/clip.safetensors',
    out: 'runs/colored-mnist-text',
    gridPrompts: [...seen, ...heldOut],
  }),
);
