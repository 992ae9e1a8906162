/**
 * Text-to-image on CIFAR-10 ("a photo of a cat") in the latent space of a
 * CIFAR-10 autoencoder. CIFAR-10 cannot be downloaded here: put the binary
 * version's data_batch_*.bin / test_batch.bin in a folder and pass --data-dir.
 *
 *   npx tfjs-diffusion train-clip --dataset cifar10 --data-dir <cifar> --out runs/clip-cifar10
 *   npx tfjs-diffusion train-autoencoder --dataset cifar10 --data-dir <cifar> --out runs/cifar10-autoencoder
 *   npx tsx examples/cifar10-latent.ts --data-dir <cifar>
 *
 * Model and objective: examples/text-to-image.ts.
 */
import { CIFAR10_SYNONYMS } from '../src/data/captions';
import { runMain, runTextToImageExample } from './text-to-image';

runMain(() =>
  runTextToImageExample({
    script: 'cifar10-latent.ts',
    dataset: 'cifar10',
    space: 'latent',
    attributes: false,
    textEncoder: 'runs/clip-cifar10/clip.safetensors',
    autoencoder: 'runs/cifar10-autoencoder/autoencoder.safetensors',
    out: 'runs/cifar10-latent',
    gridPrompts: CIFAR10_SYNONYMS.map((s) => `a photo of ${s[0]}`),
  }),
);
