#!/usr/bin/env python3
"""tests/bench/bench_hf.py: HF transformers on the GPU as the peer of the serving benchmark (not a test).

Builds a LlamaForCausalLM of the same shape as a GGUF model (read with `infer info`), with random F16
weights, and times greedy `generate` of exactly --gen new tokens after a --prompt-token prompt at batch 1 and
at --batch sequences, as bench_gpu's serving figures do (16-token prompts, 64 new tokens). With --ours
bench_gpu's output, it prints our figures beside HF's and the ratios.

  python3 tests/bench/bench_hf.py --infer build/infer --model /tmp/tinyllama-1.1b-F16.gguf \
      [--ours bench_gpu.txt] [--prompt 16] [--gen 64] [--batch 64]

Needs torch with CUDA and transformers (the device machines' image has both); exits 0 saying so without them.
"""
import argparse
import re
import subprocess
import sys
import time


def model_shape(infer, model):
    """The fields of `infer info -m MODEL` that a LlamaConfig needs."""
    text = subprocess.run([infer, "info", "-m", model], check=True, capture_output=True, text=True).stdout

    def field(pattern):
        m = re.search(pattern, text, re.M)
        if not m:
            sys.exit(f"bench_hf: `infer info` printed no {pattern!r}")
        return m.group(1)

    return {
        "architecture": field(r"^architecture:\s+(\S+)"),
        "vocab_size": int(field(r"^vocab size:\s+(\d+)")),
        "hidden_size": int(field(r"^embedding:\s+(\d+)")),
        "num_hidden_layers": int(field(r"^layers:\s+(\d+)")),
        "num_attention_heads": int(field(r"^heads:\s+(\d+)")),
        "num_key_value_heads": int(field(r"^heads:\s+\d+ \(kv (\d+)")),
        "intermediate_size": int(field(r"^feed-forward:\s+(\d+)")),
        "rope_theta": float(field(r"^rope:\s+base (\S+),")),
        "max_position_embeddings": int(field(r"^context length:\s+(\d+)")),
        "tie_word_embeddings": field(r"^output:\s+(.*)$").startswith("tied"),
    }


def our_rates(path, shape, type_name):
    """bench_gpu's serving figures for SHAPE TYPE: {n_seqs: tok/s}, with 1 for the single sequence."""
    rates, inside = {}, False
    with open(path) as f:
        for line in f:
            if not line.startswith(" "):
                inside = line.split()[:2] == [shape, type_name]
                continue
            m = re.search(r"serving\s+(\d+) sequences x \d+ tokens:\s+([\d.]+) tok/s in all; 1 sequence ([\d.]+)", line)
            if inside and m:
                rates[int(m.group(1))] = float(m.group(2))
                rates[1] = float(m.group(3))
    return rates


def hf_rate(model, torch, vocab, batch, n_prompt, n_gen):
    """Generated tokens per second of greedy generate() at `batch` sequences, exactly n_gen new tokens each."""
    g = torch.Generator(device="cpu").manual_seed(batch)
    ids = torch.randint(3, vocab, (batch, n_prompt), generator=g).to("cuda")
    mask = torch.ones_like(ids)
    kwargs = dict(attention_mask=mask, do_sample=False, pad_token_id=0, eos_token_id=None)
    model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kwargs)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n_gen, min_new_tokens=n_gen, **kwargs)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    generated = (out.shape[1] - n_prompt) * batch
    return generated / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--infer", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ours", help="bench_gpu's output, for the ratios")
    ap.add_argument("--shape", default="tinyllama-1.1b", help="the model's shape name in bench_gpu's output")
    ap.add_argument("--type", default="F16", help="the model's type in bench_gpu's output")
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"bench_hf: skipped, {e}")
        return 0
    if not torch.cuda.is_available():
        print("bench_hf: skipped, torch sees no CUDA device")
        return 0
    shape = model_shape(a.infer, a.model)
    if shape.pop("architecture") != "llama":
        sys.exit("bench_hf: only llama-architecture models have a LlamaForCausalLM peer")
    config = transformers.LlamaConfig(**shape)
    torch.manual_seed(1)
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(config).to(torch.float16).eval()
    print(f"HF transformers {transformers.__version__}, torch {torch.__version__}: LlamaForCausalLM "
          f"{shape['hidden_size']}x{shape['num_hidden_layers']} F16, random weights, greedy generate of "
          f"{a.gen} tokens after {a.prompt}")
    ours = our_rates(a.ours, a.shape, a.type) if a.ours else {}
    with torch.inference_mode():
        for batch in (1, a.batch):
            rate = hf_rate(model, torch, shape["vocab_size"], batch, a.prompt, a.gen)
            line = f"  batch {batch:3d}: HF {rate:9.1f} tok/s"
            if batch in ours:
                line += f"; ours {ours[batch]:9.1f} tok/s; ours / HF = {ours[batch] / rate:.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
