import { unetConfig } from '../../src/models/unet';
import { unetForwardFlops } from '../../src/models/unetFlops';

describe('unetForwardFlops', () => {
  // Reference figures printed by the PyTorch peer (torch.utils.flop_counter.FlopCounterMode, torch 2.13.0+cpu):
  //   python3 ../shared/peers/torch_unet.py --steps 1 --warmup 0                        -> forward GFLOPs/image 0.7255
  //   python3 ../shared/peers/torch_unet.py --steps 1 --warmup 0 --cross-attn           -> 0.7334
  //   python3 ../shared/peers/torch_unet.py --steps 1 --warmup 0 --size 8 --channels 4  -> 0.0477
  // (also listed in ../shared/peers/README.md). Counted: convs and matmuls, 2 FLOPs per MAC.
  it('matches the PyTorch FLOP counter on the peer architecture', () => {
    const plain = unetConfig({});
    expect(unetForwardFlops(plain) / 1e9).toBeCloseTo(0.7255, 4);
    const cross = unetConfig({ contextDim: 64, addPooledContextToTime: false });
    expect(unetForwardFlops(cross, 8) / 1e9).toBeCloseTo(0.7334, 4);
    const latent = unetConfig({ inChannels: 4, sampleSize: 8, attentionResolutions: [4] });
    expect(unetForwardFlops(latent) / 1e9).toBeCloseTo(0.0477, 4);
  });
});
