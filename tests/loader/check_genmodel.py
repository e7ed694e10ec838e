#!/usr/bin/python3
"""check_genmodel.py - independent (numpy-only) check of a gen-model output.

    check_genmodel.py GENMODEL_TOOL TOKENIZER_JSON

Writes `tiny` twice (single file, and sharded with 200 kB shards) into a
temporary directory with the test driver, then reads the files back without
any embedq code and checks what Hugging Face's loaders rely on:
  - safetensors: 8-byte LE length, JSON header, data section 8-aligned,
    offsets contiguous from 0 to the end of the file (the Rust safetensors
    crate rejects gaps), BF16, 2-D linear / 1-D norm shapes as QWEN3.md;
  - the index: total_size = sum of tensor bytes, weight_map covers every
    tensor and names the shard holding it; shards = single file's tensors;
  - config.json: every field transformers' Qwen3Config reads;
  - tokenizer.json = source with the embedding repos' post_processor;
  - value statistics: embed ~N(0,1), linear ~N(0,1/in), norms in [0.7,1.3].
Must run under Debian's /usr/bin/python3 (numpy).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    assert (8 + n) % 8 == 0, f"{path}: data section not 8-aligned"
    h = json.loads(b[8:8 + n].decode("utf-8"))
    meta = h.pop("__metadata__", {})
    assert meta.get("format") == "pt", meta
    data = b[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in h.items())
    pos = 0
    for s, e, k in spans:
        assert s == pos, f"{path}: {k} starts at {s}, expected {pos} (gap/overlap)"
        pos = e
    assert pos == len(data), f"{path}: data ends at {pos}, file has {len(data)}"
    out = {}
    for k, v in h.items():
        assert v["dtype"] == "BF16", (k, v["dtype"])
        s, e = v["data_offsets"]
        u = np.frombuffer(data[s:e], dtype="<u2").astype(np.uint32) << 16
        out[k] = u.view(np.float32).reshape(v["shape"])
    return out


def main():
    tool, tok = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        one, sh = os.path.join(tmp, "one"), os.path.join(tmp, "sharded")
        subprocess.run([tool, "tiny", one, "--seed", "5", "--tokenizer", tok], check=True)
        subprocess.run([tool, "tiny", sh, "--seed", "5", "--tokenizer", tok,
                        "--shard-bytes", "200000"], check=True)

        cfg = json.load(open(os.path.join(one, "config.json")))
        need = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                "torch_dtype": "bfloat16", "hidden_size": 96, "intermediate_size": 160,
                "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 32,
                "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000, "rope_scaling": None, "attention_bias": False,
                "attention_dropout": 0.0, "hidden_act": "silu",
                "tie_word_embeddings": True, "use_sliding_window": False,
                "sliding_window": None, "max_window_layers": 2, "vocab_size": 151669,
                "bos_token_id": 151643, "eos_token_id": 151643, "use_cache": True,
                "initializer_range": 0.02}
        for k, v in need.items():
            assert k in cfg and cfg[k] == v, f"config.json {k}: {cfg.get(k)!r} != {v!r}"

        src = json.load(open(tok))
        got = json.load(open(os.path.join(one, "tokenizer.json")))
        pp = got.pop("post_processor")
        src.pop("post_processor")
        assert got == src, "tokenizer.json differs from the source beyond post_processor"
        assert pp["type"] == "TemplateProcessing"
        assert pp["single"][1] == {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
        assert pp["special_tokens"]["<|endoftext|>"]["ids"] == [151643]

        w = read_st(os.path.join(one, "model.safetensors"))
        assert len(w) == 2 + 2 * 11, len(w)
        H, I, QD, KD, D = 96, 160, 128, 64, 32
        shapes = {"embed_tokens.weight": (151669, H), "norm.weight": (H,)}
        for l in range(2):
            p = f"layers.{l}."
            shapes.update({p + "self_attn.q_proj.weight": (QD, H),
                           p + "self_attn.k_proj.weight": (KD, H),
                           p + "self_attn.v_proj.weight": (KD, H),
                           p + "self_attn.o_proj.weight": (H, QD),
                           p + "self_attn.q_norm.weight": (D,),
                           p + "self_attn.k_norm.weight": (D,),
                           p + "mlp.gate_proj.weight": (I, H),
                           p + "mlp.up_proj.weight": (I, H),
                           p + "mlp.down_proj.weight": (H, I),
                           p + "input_layernorm.weight": (H,),
                           p + "post_attention_layernorm.weight": (H,)})
        assert set(w) == set(shapes), set(w) ^ set(shapes)
        for k, s in shapes.items():
            a = w[k]
            assert a.shape == s, (k, a.shape, s)
            assert np.isfinite(a).all(), k
            if a.ndim == 1:
                assert a.min() >= 0.7 - 1e-2 and a.max() <= 1.3 + 1e-2, k
                assert a.std() > 0.1, f"{k}: norm weights nearly constant"
            else:
                want = 1.0 if k.startswith("embed") else 1.0 / np.sqrt(s[1])
                assert abs(a.std() / want - 1) < 0.05, (k, a.std(), want)
                assert abs(a.mean()) < 0.1 * want, (k, a.mean())

        idx = json.load(open(os.path.join(sh, "model.safetensors.index.json")))
        wm = idx["weight_map"]
        assert set(wm) == set(shapes)
        total = 0
        files = sorted(set(wm.values()))
        assert files == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)], files
        for f in files:
            part = read_st(os.path.join(sh, f))
            for k, a in part.items():
                assert wm[k] == f, (k, wm[k], f)
                assert np.array_equal(a.view(np.uint32), w[k].view(np.uint32)), k
                total += a.size * 2
        assert idx["metadata"]["total_size"] == total, (idx["metadata"], total)
        assert not os.path.exists(os.path.join(sh, "model.safetensors"))
    print("check_genmodel: ok")


if __name__ == "__main__":
    main()
