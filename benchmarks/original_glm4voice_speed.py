"""Speed of the original GLM-4-Voice speech decoder and tokenizer on this machine (PyTorch, float32).

    make original-env
    .venv-original/bin/python -m benchmarks.original_glm4voice_speed [--seconds 1 5 20] [--tokenizer-seconds 10 30]

It measures the reference figures that `speech_decoder_speed` and `speech_tokenizer_speed` compare
with (`benchmarks/original_reference.py` keeps one record per machine kind). It runs in its own
environment: torch 2.13.0 CPU and the original's building blocks at GLM-4-Voice's pinned versions
(diffusers 0.27.2, transformers 4.44.1), never vita-jax. Random weights of the real sizes.

- Decoder: the upstream CosyVoice modules GLM-4-Voice's decoder is built from, from PyPI
  `cosyvoice-minicpmo` 0.1.0: `ConformerEncoder` (static chunks of 10: GLM's block encoder),
  Matcha's `ConditionalDecoder` (its transformer blocks run diffusers' attention, i.e. torch's
  `scaled_dot_product_attention`) and `HiFTGenerator`. glm4voice-decoder-spec.md section 8 checked
  them against GLM's modules with the same weights. The glue is GLM's `token2wav`: embedding,
  encoder, projection, nearest-frame length regulation, 10 Euler steps of two estimator calls
  (conditional and unconditional, as the original: batch 1 each; the loop is `tests/torch_refs`'),
  then HiFT.
- Tokenizer: GLM's `WhisperVQEncoder` layers are transformers' Whisper encoder layer with SDPA
  attention ("Copied from"), so transformers 4.44.1's `WhisperEncoderLayer` runs the same ops; around
  them GLM's forward (causal convolutions, 16 layers, block-causal float mask of 200 frames, average
  pooling by 4, codebook argmin) and its features (`WhisperFeatureExtractor`, 128 mels, padded
  to a multiple of 1280 samples), one file per call.
"""

import argparse
import importlib.machinery
import sys
import types

import numpy as np

from benchmarks.machine import machine_line, summary, timed


def stub_torchaudio():
    """The upstream packages import torchaudio, which these modules never use (and which is not installed)."""
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules.setdefault("torchaudio", stub)


class OriginalDecoder:
    """GLM-4-Voice's flow + HiFT at the real config (glm-4-voice-decoder/config.yaml), random weights."""

    def __init__(self):
        import torch
        from cosyvoice.flow.decoder import ConditionalDecoder
        from cosyvoice.hifigan.f0_predictor import ConvRNNF0Predictor
        from cosyvoice.hifigan.generator import HiFTGenerator
        from cosyvoice.transformer.encoder import ConformerEncoder

        from tests.torch_refs.flow_ref import CFMRef

        torch.manual_seed(0)
        self.torch = torch
        self.embed = torch.nn.Embedding(16384, 512)
        self.spk_affine = torch.nn.Linear(192, 80)
        self.encoder = ConformerEncoder(
            input_size=512, output_size=512, attention_heads=8, linear_units=2048, num_blocks=6, dropout_rate=0.0,
            positional_dropout_rate=0.0, attention_dropout_rate=0.0, input_layer="linear",
            pos_enc_layer_type="rel_pos_espnet", selfattention_layer_type="rel_selfattn", static_chunk_size=10,
            macaron_style=False, use_cnn_module=False, normalize_before=True)
        self.encoder_proj = torch.nn.Linear(512, 80)
        regulator = []
        for _ in range(4):
            regulator += [torch.nn.Conv1d(80, 80, 3, 1, 1), torch.nn.GroupNorm(1, 80), torch.nn.Mish()]
        self.regulator = torch.nn.Sequential(*regulator, torch.nn.Conv1d(80, 80, 1, 1))
        estimator = ConditionalDecoder(in_channels=320, out_channels=80, channels=[256, 256], dropout=0.0,
                                       attention_head_dim=64, n_blocks=4, num_mid_blocks=12, num_heads=8,
                                       act_fn="gelu")
        self.cfm = CFMRef(estimator, cfg_rate=0.7)
        self.hift = HiFTGenerator(
            in_channels=80, base_channels=512, nb_harmonics=8, sampling_rate=22050, nsf_alpha=0.1, nsf_sigma=0.003,
            nsf_voiced_threshold=10, upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16],
            istft_params={"n_fft": 16, "hop_len": 4}, resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3, source_resblock_kernel_sizes=[7, 11],
            source_resblock_dilation_sizes=[[1, 3, 5]] * 2, lrelu_slope=0.1, audio_limit=0.99,
            f0_predictor=ConvRNNF0Predictor(1, 80, 512))
        for module in (self.embed, self.spk_affine, self.encoder, self.encoder_proj, self.regulator, self.cfm,
                       self.hift):
            module.eval()

    def token2mel(self, tokens):
        torch, F = self.torch, self.torch.nn.functional
        with torch.inference_mode():
            n = tokens.shape[1]
            h, _ = self.encoder(self.embed(tokens), torch.tensor([n]))
            frames = int(torch.tensor(n) / 12.5 * 22050 / 256)
            mu = self.regulator(F.interpolate(self.encoder_proj(h).transpose(1, 2), size=frames, mode="nearest"))
            spks = self.spk_affine(F.normalize(torch.zeros(1, 192), dim=1))
            return self.cfm(torch.randn(1, 80, frames), mu, torch.ones(1, 1, frames), spks, torch.zeros(1, 80, frames))

    def mel2wav(self, mel):
        with self.torch.inference_mode():
            return self.hift.inference(speech_feat=mel)[0]


class OriginalTokenizer:
    """GLM-4-Voice's speech tokenizer at the real config (glm-4-voice-tokenizer), random weights."""

    def __init__(self):
        import torch
        from torch import nn
        from transformers import WhisperConfig, WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoderLayer, sinusoids

        class CausalConv1d(nn.Conv1d):
            def forward(self, x):
                return super().forward(nn.functional.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0)))

        config = WhisperConfig(d_model=1280, encoder_attention_heads=20, encoder_ffn_dim=5120,
                               activation_function="gelu")
        config._attn_implementation = "sdpa"  # what GLM's checkpoint loads with (its model supports SDPA)
        torch.manual_seed(0)
        self.torch, self.nn = torch, nn
        self.conv1 = CausalConv1d(128, 1280, kernel_size=3).eval()
        self.conv2 = CausalConv1d(1280, 1280, kernel_size=3, stride=2).eval()
        self.layers = nn.ModuleList(WhisperEncoderLayer(config) for _ in range(16)).eval()
        if type(self.layers[0].self_attn).__name__ != "WhisperSdpaAttention":
            raise RuntimeError(f"expected SDPA attention, got {type(self.layers[0].self_attn).__name__}: "
                               "install transformers==4.44.1 (benchmarks/original-requirements.txt)")
        self.positions = sinusoids(1500, 1280)
        self.codebook = 0.02 * torch.randn(16384, 1280)
        self.features = WhisperFeatureExtractor(feature_size=128)

    def block_causal_bias(self, valid, block=200):
        torch = self.torch
        n = valid.shape[1]
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        allowed = ((j <= i) | (i // block == j // block))[None] & valid[:, None, :].bool()
        return ((~allowed).float() * torch.finfo(torch.float32).min)[:, None]

    def encode(self, wav):
        torch, F = self.torch, self.nn.functional
        with torch.inference_mode():
            feats = self.features([wav], sampling_rate=16000, return_attention_mask=True, return_tensors="pt",
                                  padding="longest", pad_to_multiple_of=1280)
            valid = feats.attention_mask[:, ::2]
            bias = self.block_causal_bias(valid)
            h = F.gelu(self.conv2(F.gelu(self.conv1(feats.input_features)))).permute(0, 2, 1)
            h = h + self.positions[: h.shape[1]]
            for layer in self.layers:
                h = layer(h, bias, layer_head_mask=None)[0]
            pooled = F.avg_pool1d(h.permute(0, 2, 1), 4, 4).permute(0, 2, 1).reshape(-1, 1280)
            distances = torch.addmm((self.codebook ** 2).sum(1)[None] + (pooled ** 2).sum(1, keepdim=True), pooled,
                                    self.codebook.T, alpha=-2.0, beta=1.0)
            return distances.min(dim=1).indices[valid[0, ::4].bool()]


def decoder_row(dec, n_codes, repeats):
    """Median/spread of `repeats` warm token2wav runs of n_codes random codes."""
    tokens = dec.torch.randint(0, 16384, (1, n_codes))
    dec.mel2wav(dec.token2mel(tokens))  # warm-up
    flow_s, hift_s, rtf = [], [], []
    for _ in range(repeats):
        mel, f = timed(dec.token2mel, tokens)
        wav, h = timed(dec.mel2wav, mel)
        flow_s.append(f), hift_s.append(h), rtf.append(wav.shape[-1] / 22050 / (f + h))
    audio_s = wav.shape[-1] / 22050
    print(f"| {audio_s:.2f} s | {n_codes} | {mel.shape[-1]} | {summary(flow_s)} | {summary(hift_s)} | "
          f"{summary([f + h for f, h in zip(flow_s, hift_s)])} | {summary(rtf, 3)} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="*", default=[1, 5, 20], help="decoder offline lengths")
    ap.add_argument("--tokenizer-seconds", type=float, nargs="*", default=[10, 30], help="one file each")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per row (median and spread)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be >= 1, got {args.repeats}")
    stub_torchaudio()
    import torch
    import transformers

    print(machine_line())
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"float32, random weights of the real sizes; median (min-max) of {args.repeats} warm runs\n")
    if args.seconds:
        dec = OriginalDecoder()
        print("decoder, offline token2wav (codes as speech_decoder_speed: round(seconds * 12.5)); first streamed "
              "chunk = token2wav of 10 codes")
        print("| audio | codes | frames | flow s | HiFT s | token2wav s | audio s / wall s |\n" + "|---" * 7 + "|")
        for n_codes in [int(round(s * 12.5)) for s in args.seconds] + [10]:
            decoder_row(dec, n_codes, args.repeats)
    if args.tokenizer_seconds:
        tok = OriginalTokenizer()
        rng = np.random.default_rng(0)
        print("\ntokenizer, one file per call (features included)")
        print("| file | codes | wall s | audio s / wall s |\n|---|---|---|---|")
        for seconds in args.tokenizer_seconds:
            wav = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
            codes, _ = timed(tok.encode, wav)  # warm-up
            walls = [timed(tok.encode, wav)[1] for _ in range(args.repeats)]
            print(f"| {seconds:g} s | {len(codes)} | {summary(walls)} | {summary([seconds / w for w in walls])} |",
                  flush=True)


if __name__ == "__main__":
    main()
