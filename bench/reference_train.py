#!/usr/bin/python3
"""Training-step throughput of a PyTorch reference implementation, built from a mnemo bench config.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/reference_train.py CONFIG [--set KEY=VALUE ...]
        [--steps N] [--warmup N] [--threads N] [--src DIR]

Reads the same YAML fields as `mnemo bench train` (data.{segments, segment_len, batch_size},
model.{arch, dim, depth, heads, vocab, <arch>.*}, train.{bptt, window, threads, clip,
optimizer.*}), builds the lucidrains reference model with the same sizes, and times full
training steps: every segment's forward and backward as the reference's own wrapper trains,
gradient-norm clipping and one torch.optim.AdamW step. Prints the median step's tokens/s and
the process's peak resident memory in the layout of `mnemo bench train`.

Needs python3-torch and python3-yaml (Debian), torch's BLAS resolved to OpenBLAS (package
libopenblas0-pthread), and the reference sources: every folder directly under --src (default
$MNEMO_REFSRC, else /tmp/refsrc) goes on sys.path. See docs/BENCHMARKS.md, "Side by side".
Nothing in mnemo's build or tests runs this file.
"""

import argparse
import os
import resource
import statistics
import sys
import time
import types

# Exit status 2: something this machine lacks (a package, the sources); 1: a config it cannot run.
MISSING, BAD_CONFIG = 2, 1


def fail(code, message):
    print(f"reference_train.py: {message}", file=sys.stderr)
    sys.exit(code)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, as mnemo's --set (value read as YAML)")
    p.add_argument("--steps", type=int, default=5, help="timed steps (median taken)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: train.threads, else 2)")
    p.add_argument("--src", default=os.environ.get("MNEMO_REFSRC", "/tmp/refsrc"),
                   help="folder holding the extracted reference repositories")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def load_config(path, sets):
    try:
        import yaml
    except ImportError:
        fail(MISSING, "PyYAML is missing: apt-get install python3-yaml")
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as e:
        fail(BAD_CONFIG, f"{path}: {e.strerror}")
    except yaml.YAMLError as e:
        fail(BAD_CONFIG, f"{path}: {e}")
    for s in sets:
        key, eq, value = s.partition("=")
        if not eq or not key:
            fail(BAD_CONFIG, f"--set {s!r}: expected KEY=VALUE")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                fail(BAD_CONFIG, f"--set {key}: {part} is not a map in {path}")
        node[leaf] = yaml.safe_load(value)
    return cfg


def field(cfg, path, key, default=None, kind=None):
    """cfg[a][b]... for key 'a.b...', the default where absent; a wrong type names file and key."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    if kind is not None and not isinstance(node, kind):
        fail(BAD_CONFIG, f"{path}: {key} is {node!r}, expected {kind.__name__}")
    return node


# Per architecture: mnemo's model.<arch> keys passed to the reference constructor under the
# same name, and keys that change numerics but not the work of a step (ignored here). Any
# other key is refused: its cost could differ from what the reference computes.
SAME_NAME = {
    "brt": {"dim_head", "block_width", "num_state_vectors", "recurrent_layers", "read_recurrent_layers",
            "all_layers_qk_rmsnorm", "ff_mult", "use_compressed_mem", "compressed_mem_factor"},
    "rmt": {"num_memory_tokens", "dim_head", "ff_mult", "causal", "memory_not_causal", "abs_pos_emb",
            "rotary_pos_emb", "use_xl_memories", "xl_mem_len", "enhanced_xl_recurrence", "emb_gradient_frac",
            "add_write_to_next_write_mem", "next_write_mem_stop_grad", "always_have_read_memories",
            "num_residual_streams", "attn_dropout", "ff_dropout"},
    "compressive": {"emb_dim", "memory_layers", "enhanced_recurrence", "mem_len", "cmem_ratio", "cmem_len",
                    "gru_gated_residual", "ff_glu", "attn_dropout", "ff_dropout", "attn_layer_dropout",
                    "reconstruction_attn_dropout", "reconstruction_loss_weight"},
    "memxl": {"emb_dim", "memory_layers", "mem_len", "lmem_len", "gru_gated_residual", "ff_glu", "attn_dropout",
              "ff_dropout", "attn_layer_dropout", "one_kv_head", "num_mem_kv", "mem_write_iters"},
}
COST_NEUTRAL = {
    "brt": {"qk_rmsnorm_scale", "ema_gate_init", "rotary_theta", "xpos_scale_base", "reference_parity"},
    "rmt": {"rotary_theta", "reference_parity"},
    "compressive": {"gate_bias_init", "final_norm", "reference_parity"},
    "memxl": {"writer_keep_init", "reference_parity"},
}
# mnemo-only options the reference cannot do, with the value that matches the reference.
MUST_EQUAL = {
    "rmt": {"value_residual": True, "null_kv": True, "mask_out_read_memories": False},
    "compressive": {"mogrify_gru": False},
    "memxl": {"mogrify_gru": False, "detach_hiddens": True},
}


def arch_kwargs(cfg, path, arch):
    opts = field(cfg, path, f"model.{arch}", {}, dict)
    kw = {}
    for key, value in opts.items():
        if key in SAME_NAME[arch]:
            kw[key] = tuple(value) if isinstance(value, list) else value
        elif key in COST_NEUTRAL[arch]:
            pass
        elif key in MUST_EQUAL.get(arch, {}):
            if value != MUST_EQUAL[arch][key]:
                fail(BAD_CONFIG, f"{path}: model.{arch}.{key}: {value!r} has no counterpart in the reference "
                                 f"(it computes {key} = {MUST_EQUAL[arch][key]!r})")
        else:
            fail(BAD_CONFIG, f"{path}: model.{arch}.{key}: not mapped onto the reference (unknown cost)")
    return kw


def import_reference(src):
    if not os.path.isdir(src):
        fail(MISSING, f"reference sources not found in {src} (--src or MNEMO_REFSRC): extract the mirrors, e.g. "
                      "git --git-dir=/work/.mirror/lucidrains+NAME/repo archive HEAD PKG | tar -x -C DIR/NAME "
                      "(see docs/BENCHMARKS.md)")
    for name in sorted(os.listdir(src)):
        if os.path.isdir(os.path.join(src, name)):
            sys.path.insert(0, os.path.join(src, name))
    # Compressive and MemXL import Mogrifier at module level but construct it only with
    # mogrify_gru, which arch_kwargs refuses; a placeholder spares installing the package.
    if "mogrifier" not in sys.modules:
        try:
            import mogrifier  # noqa: F401
        except ImportError:
            placeholder = types.ModuleType("mogrifier")

            class Mogrifier:
                def __init__(self, *args, **kwargs):
                    raise RuntimeError("the mogrifier package is not installed (mogrify_gru needs it)")

            placeholder.Mogrifier = Mogrifier
            sys.modules["mogrifier"] = placeholder


def add_rms_norm(torch):
    """torch.nn.RMSNorm for torch < 2.4 (Debian 12 has 1.13), which the RMT reference builds:
    y = x / sqrt(mean(x^2) + eps) * weight, eps the dtype's machine epsilon by default, as
    torch's. Elementwise ops like torch 2.4's own composite version, so of like cost."""
    if hasattr(torch.nn, "RMSNorm"):
        return

    class RMSNorm(torch.nn.Module):
        def __init__(self, dim, eps=None):
            super().__init__()
            self.eps = eps
            self.weight = torch.nn.Parameter(torch.ones(dim))

        def forward(self, x):
            eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    torch.nn.RMSNorm = RMSNorm


def blas_library():
    """The BLAS shared object this process mapped (torch resolves libblas.so.3 at load)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    return sorted(paths)


def build(cfg, path, arch, vocab, dim, depth, heads, seg_len):
    kw = arch_kwargs(cfg, path, arch)

    def need(module, what):
        try:
            return __import__(module, fromlist=[what])
        except ImportError as e:
            fail(MISSING, f"cannot import {module} ({e}); its source folder must be under --src "
                          f"(with einops, beartype, hyper-connections; python3-packaging for BRT and RMT)")

    if arch == "brt":
        m = need("block_recurrent_transformer_pytorch", "BlockRecurrentTransformer")
        kw.setdefault("dim_head", dim // heads)
        net = m.BlockRecurrentTransformer(num_tokens=vocab, dim=dim, depth=depth, heads=heads, max_seq_len=seg_len,
                                          **kw)
        return m.RecurrentTrainerWrapper(net, xl_memories_dropout=0., state_dropout=0.)
    if arch == "rmt":
        m = need("recurrent_memory_transformer_pytorch", "RecurrentMemoryTransformer")
        if "num_memory_tokens" not in kw:
            fail(BAD_CONFIG, f"{path}: model.rmt.num_memory_tokens is required")
        kw.setdefault("dim_head", dim // heads)
        # mnemo turns rotary positions on by default (P11 in docs/arch/rmt.md); the
        # reference's default is off, so the reference is told, to do the same work.
        kw.setdefault("rotary_pos_emb", not field(cfg, path, "model.rmt.reference_parity", False))
        net = m.RecurrentMemoryTransformer(dim, num_tokens=vocab, depth=depth, heads=heads, seq_len=seg_len, **kw)
        return m.RecurrentMemoryTransformerWrapper(net)
    if arch == "compressive":
        m = need("compressive_transformer_pytorch", "CompressiveTransformer")
        net = m.CompressiveTransformer(num_tokens=vocab, dim=dim, seq_len=seg_len, depth=depth, heads=heads, **kw)
        return m.AutoregressiveWrapper(net)
    if arch == "memxl":
        m = need("memory_transformer_xl", "MemoryTransformerXL")
        net = m.MemoryTransformerXL(num_tokens=vocab, dim=dim, seq_len=seg_len, depth=depth, heads=heads, **kw)
        mw = need("memory_transformer_xl.autoregressive_wrapper", "AutoregressiveWrapper")
        return mw.AutoregressiveWrapper(net)
    fail(BAD_CONFIG, f"{path}: model.arch: {arch!r} has no reference here (brt, rmt, compressive, memxl)")


def compressive_to_kv(model):
    return [layer.fn.fn.to_kv.weight for layer in model.net.attn_layers]


def main():
    args = parse_args()
    path = args.config
    cfg = load_config(path, args.set)
    arch = field(cfg, path, "model.arch", "transformer", str)
    dim = field(cfg, path, "model.dim", 128, int)
    depth = field(cfg, path, "model.depth", 2, int)
    heads = field(cfg, path, "model.heads", 4, int)
    vocab = field(cfg, path, "model.vocab", 256, int)
    segments = field(cfg, path, "data.segments", 1, int)
    seg_len = field(cfg, path, "data.segment_len", 0, int)
    batch = field(cfg, path, "data.batch_size", 0, int)
    if seg_len <= 0 or batch <= 0 or segments <= 0:
        fail(BAD_CONFIG, f"{path}: data.segment_len, data.batch_size and data.segments must be positive")
    bptt = field(cfg, path, "train.bptt", "truncated", str)
    window = field(cfg, path, "train.window", segments if bptt == "replay" else 1, int)
    clip = float(field(cfg, path, "train.clip", 1.0))
    step_every = field(cfg, path, "train.optimizer.step_every", "batch", str)
    opt = field(cfg, path, "train.optimizer", {}, dict)
    if field(cfg, path, "train.optimizer.type", "adamw", str) != "adamw":
        fail(BAD_CONFIG, f"{path}: train.optimizer.type: only adamw is timed here")
    if field(cfg, path, "train.precision", "f32", str) != "f32":
        fail(BAD_CONFIG, f"{path}: train.precision: the reference runs in f32 only")
    threads = args.threads or field(cfg, path, "train.threads", 0, int) or 2

    # What each reference's own training does, and which mnemo BPTT mode that is
    # (docs/arch/*.md): anything else would time different work.
    supported = {
        "brt": bptt == "truncated" and window == 1,     # the wrapper detaches memories and states per segment
        "compressive": bptt == "truncated" and window == 1,  # memories come back detached
        "memxl": bptt == "truncated",                   # truncate_every = window
        "rmt": bptt == "replay",  # memory-replay backprop, memories cut every window segments
    }
    if arch in supported and not supported[arch]:
        fail(BAD_CONFIG, f"{path}: train.bptt {bptt} (window {window}) is not how the {arch} reference trains")
    if step_every == "segment" and arch not in ("compressive", "memxl"):
        fail(BAD_CONFIG, f"{path}: train.optimizer.step_every: segment is timed for compressive and memxl only")

    try:
        import torch
    except ImportError:
        fail(MISSING, "torch is missing for this python: apt-get install python3-torch, run with /usr/bin/python3")
    import_reference(args.src)
    add_rms_norm(torch)
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)

    model = build(cfg, path, arch, vocab, dim, depth, heads, seg_len)
    model.train()
    params = [p for p in model.parameters()]
    n_params = sum(p.numel() for p in params)
    optim = torch.optim.AdamW(params, lr=float(opt.get("lr", 1e-3)), betas=tuple(opt.get("betas", (0.9, 0.999))),
                              eps=float(opt.get("eps", 1e-8)), weight_decay=float(opt.get("weight_decay", 0.01)))
    x = torch.randint(0, vocab, (batch, segments * seg_len + 1))
    tokens = batch * segments * seg_len

    def update():
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optim.step()
        optim.zero_grad(set_to_none=False)

    to_kv = compressive_to_kv(model) if arch == "compressive" else []

    def step():
        if arch == "brt":
            model(x).backward()
            update()
        elif arch == "rmt":
            # the wrapper runs the backward itself
            model(x, memory_replay_backprop=True, truncate_at_step=window if window < segments else None)
            update()
        elif arch == "compressive":
            # The reference's compression detaches to_kv's weight in place (SPEC P1), which
            # stops its gradient for good; turned back on per step, as mnemo trains it. The
            # segments that compress still skip it (a difference stated in BENCHMARKS.md).
            for w in to_kv:
                w.requires_grad_(True)
            for mlm_loss, aux_loss, _ in model(x, return_loss=True):
                (mlm_loss + aux_loss).backward()
                if step_every == "segment":
                    update()
            if step_every != "segment":
                update()
        elif arch == "memxl":
            # Per-segment backward with the graph kept: the next segment's loss reaches back
            # through the long memory within a window of truncate_every segments.
            for loss, _ in model(x, return_loss=True, truncate_every=window):
                loss.backward(retain_graph=True)
                if step_every == "segment":
                    update()
            if step_every != "segment":
                update()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    blas = ", ".join(os.path.basename(b) if "openblas" not in b else b for b in blas_library()) or "none mapped"

    print(f"config            {path} ({arch} reference, {n_params} parameters)")
    print(f"batch             {batch} x {segments} segments x {seg_len} tokens, bptt {bptt}, {threads} threads")
    print(f"precision         f32, torch {torch.__version__}, BLAS {blas}")
    print(f"model step        {s * 1e3:.2f} ms median over {args.steps} steps: {tokens / s:.0f} tokens/s")
    print(f"steps (ms)        {' '.join(f'{t * 1e3:.1f}' for t in times)}")
    print(f"peak step memory  peak RSS {rss_mib:.1f} MiB")
    if not any("openblas" in b for b in blas_library()):
        print("warning           torch is not using OpenBLAS (apt-get install libopenblas0-pthread): "
              "the figure is not the comparison's", file=sys.stderr)


if __name__ == "__main__":
    main()
