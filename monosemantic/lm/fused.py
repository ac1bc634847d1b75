"""A fused unembedding + cross-entropy for training the transformer on CPUs (`transformer.kernels: fused`).

The reference step computes logits = W_U h + b_U for every token (batch 32 x 128 tokens x 4,096 vocabulary:
16.7M numbers, 67 MB in fp32), casts them, runs log_softmax and its backward over them and zero-fills a
gradient of the same size. At d_model 128 that memory traffic, not arithmetic, is most of the step. This
module computes the mean loss

    L = 1/N sum_n [ logsumexp_v z_nv - z_n,t_n ],    z_n = W_U h_n + b_U,

and its gradients in one pass over chunks of `chunk` tokens, so that each chunk's logits stay in cache:

    dL/dz_n = (softmax(z_n) - onehot(t_n)) / N,   dL/dh = dL/dz W_U,   dL/dW_U = dL/dz^T h,   dL/db_U = sum_n dL/dz_n

The gradients are computed during the forward pass (the loss is a mean, so backward only scales them by the
incoming scalar), which saves re-computing the logits. With matmul_dtype bf16 the three products run in bf16
(AMX / tensor cores) with fp32 logits and fp32 softmax; with fp32 the result equals the reference up to the
order of summation (tests/test_fused.py).
"""

from __future__ import annotations

import torch


class _LinearCrossEntropyMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, targets, matmul_dtype, chunk):
        with torch.autocast(h.device.type, enabled=False):  # the dtypes are explicit here
            return _LinearCrossEntropyMean._forward(ctx, h, weight, bias, targets, matmul_dtype, chunk)

    @staticmethod
    def _forward(ctx, h, weight, bias, targets, matmul_dtype, chunk):
        n, grad = h.shape[0], any(ctx.needs_input_grad[:3])
        w = weight.detach().to(matmul_dtype)
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        dh = torch.empty(h.shape, dtype=torch.float32, device=h.device) if grad else None
        dw = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if grad else None
        db = torch.zeros(bias.shape, dtype=torch.float32, device=h.device) if grad else None
        b = bias.detach().float()
        for lo in range(0, n, chunk):
            hc = h[lo:lo + chunk].detach().to(matmul_dtype)
            t = targets[lo:lo + chunk, None]
            z = torch.mm(hc, w.t())
            z = z.float().add_(b) if z.dtype != torch.float32 else z.add_(b)
            z.sub_(z.amax(dim=1, keepdim=True))            # z - max: the loss and softmax are shift-invariant
            z_t = z.gather(1, t).squeeze(1)
            p = z.exp_()
            s = p.sum(dim=1)
            total += (s.log() - z_t).sum(dtype=torch.float64)
            if grad:
                p.div_(s[:, None] * n)                       # softmax / N
                p.scatter_add_(1, t, torch.full(t.shape, -1.0 / n, device=h.device))   # - onehot / N
                db += p.sum(dim=0)
                pm = p.to(matmul_dtype)
                dh[lo:lo + chunk] = torch.mm(pm, w)
                dw += torch.mm(pm.t(), hc)
        if grad:
            ctx.save_for_backward(dh, dw, db)
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        return (total / n).float()

    @staticmethod
    def backward(ctx, g):
        dh, dw, db = ctx.saved_tensors
        dt_h, dt_w, dt_b = ctx.dtypes
        return (dh.mul(g).to(dt_h), dw.mul(g).to(dt_w), db.mul(g).to(dt_b), None, None, None)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                         matmul_dtype: torch.dtype = torch.float32, chunk: int = 256) -> torch.Tensor:
    """Mean cross-entropy of logits h @ weight.T + bias against targets, without materialising the logits.

    h (N, d), weight (V, d), bias (V,), targets (N,) int64; returns a 0-dim fp32 tensor whose backward gives the
    gradients of h, weight and bias (computed in the forward pass, chunk rows at a time)."""
    if h.dim() != 2 or targets.shape != h.shape[:1]:
        raise ValueError(f"h must be (N, d) and targets (N,); got {tuple(h.shape)} and {tuple(targets.shape)}")
    return _LinearCrossEntropyMean.apply(h, weight, bias, targets, matmul_dtype, chunk)
