/**
 * Forward FLOPs of one UNet image, counted the way torch's FlopCounterMode
 * counts them (the PyTorch peer prints this figure): only convolutions and
 * matrix products, 2 FLOPs per multiply-add; bias adds, norms, activations,
 * softmax and upsampling are not counted. Used by benchmarks to turn
 * images/s into GFLOP/s (training = 3x forward by convention).
 */
import { UNetConfig, levelResolutions } from './unet';

function conv(h: number, w: number, k: number, cin: number, cout: number): number {
  return 2 * h * w * k * k * cin * cout;
}

function linear(tokens: number, fin: number, fout: number): number {
  return 2 * tokens * fin * fout;
}

/** Self-attention (+ cross-attention when contextDim is set) block at resolution r with c channels. */
function attnBlock(r: number, c: number, contextDim: number | null, contextLength: number): number {
  const n = r * r;
  let f = linear(n, c, 3 * c) + 2 * (2 * n * n * c) + linear(n, c, c); // qkv, QK^T and PV, proj
  if (contextDim !== null) {
    const m = contextLength;
    f += linear(n, c, c) + linear(m, contextDim, 2 * c) + 2 * (2 * n * m * c) + linear(n, c, c);
  }
  return f;
}

function resBlock(r: number, cin: number, cout: number, tembDim: number): number {
  return conv(r, r, 3, cin, cout) + linear(1, tembDim, cout) + conv(r, r, 3, cout, cout) + (cin !== cout ? conv(r, r, 1, cin, cout) : 0);
}

/**
 * Forward FLOPs per image. `contextLength` = number of context tokens (cross-attention only).
 * The class embedding and pooled-context projection are lookups / one small linear: the latter is counted.
 */
export function unetForwardFlops(cfg: UNetConfig, contextLength = 0): number {
  const base = cfg.baseChannels;
  const res = levelResolutions(cfg);
  const attnRes = new Set(cfg.attentionResolutions);
  const ctx = cfg.contextDim;
  let f = linear(1, cfg.timeEmbeddingInputDim, cfg.timeEmbeddingDim) + linear(1, cfg.timeEmbeddingDim, cfg.timeEmbeddingDim);
  if (cfg.addPooledContextToTime && ctx !== null) f += linear(1, ctx, cfg.timeEmbeddingDim);
  f += conv(cfg.sampleSize, cfg.sampleSize, 3, cfg.inChannels, base);
  const skips = [base];
  let ch = base;
  cfg.channelMults.forEach((m, l) => {
    const r = res[l];
    for (let i = 0; i < cfg.numResBlocks; i++) {
      f += resBlock(r, ch, base * m, cfg.timeEmbeddingDim);
      ch = base * m;
      if (attnRes.has(r)) f += attnBlock(r, ch, ctx, contextLength);
      skips.push(ch);
    }
    if (l !== cfg.channelMults.length - 1) {
      f += conv(r / 2, r / 2, 3, ch, ch); // stride 2: output resolution r/2
      skips.push(ch);
    }
  });
  const rMid = res[res.length - 1];
  f += 2 * resBlock(rMid, ch, ch, cfg.timeEmbeddingDim) + attnBlock(rMid, ch, ctx, contextLength);
  for (let l = cfg.channelMults.length - 1; l >= 0; l--) {
    const r = res[l];
    const out = base * cfg.channelMults[l];
    for (let i = 0; i < cfg.numResBlocks + 1; i++) {
      const skip = skips.pop() as number;
      f += resBlock(r, ch + skip, out, cfg.timeEmbeddingDim);
      ch = out;
      if (attnRes.has(r)) f += attnBlock(r, ch, ctx, contextLength);
    }
    if (l !== 0) f += conv(2 * r, 2 * r, 3, ch, ch); // after nearest 2x
  }
  f += conv(cfg.sampleSize, cfg.sampleSize, 3, ch, cfg.outChannels);
  return f;
}
