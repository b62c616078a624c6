"""Text encoder parity fixtures: tiny random-weight encoders in transformers.

For each config: the model saved as transformers saves it (`<name>/text_encoder/`)
and `<name>.io.safetensors` with `input_ids`, `attention_mask` (a batch with
padding) and `last_hidden_state`.

Run: /opt/reel-ref/bin/python tools/reference/text_encoders.py [OUT_DIR]
"""

import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/reel-models/tests/fixtures/text_encoders"

SMALL = dict(vocab_size=64, d_model=16, d_kv=6, d_ff=24, num_layers=2, num_heads=3,
             relative_attention_num_buckets=8, relative_attention_max_distance=20)
CONFIGS = {
    "umt5_tiny": lambda: UMT5EncoderModel(UMT5Config(**SMALL, feed_forward_proj="gated-gelu")),
    "t5_relu_tiny": lambda: T5EncoderModel(T5Config(**SMALL, feed_forward_proj="relu")),
    "t5_gated_tiny": lambda: T5EncoderModel(T5Config(**SMALL, feed_forward_proj="gated-gelu")),
    "bert_tiny": lambda: BertModel(BertConfig(vocab_size=64, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
                                              intermediate_size=20, max_position_embeddings=32, type_vocab_size=2),
                                   add_pooling_layer=False),
}


def main():
    out_dir = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(300)
    for name, make in CONFIGS.items():
        torch.manual_seed(0)
        model = make().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=gen))
        model.save_pretrained(out_dir / name / "text_encoder")
        ids = torch.randint(1, 64, (2, 25), generator=gen)
        mask = torch.ones_like(ids)
        mask[1, 17:] = 0
        ids[1, 17:] = 0
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        save_file({"input_ids": ids.to(torch.int64), "attention_mask": mask.to(torch.int64),
                   "last_hidden_state": out.contiguous()}, out_dir / f"{name}.io.safetensors")
        print(name, tuple(out.shape), float(out.abs().max()))


if __name__ == "__main__":
    main()
