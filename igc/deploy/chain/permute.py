"""Deleting shuffles by permutation algebra: exact rewrites of an operation list.

A permutation commutes with an elementwise activation and with a channel-wise (depthwise)
convolution (whose weights are permuted instead), so every permutation moves *back* to
the output of the linear 1x1 segment before it, where it is free: a dense product's rows
are permuted, a structured product writes its result in the permuted order. A
permutation with no 1x1 segment before it moves *forward* into the 1x1 segment after it,
where a dense product absorbs it into its columns and a structured one reads its input
through a strided view. A permutation before a dense convolution is absorbed into its
input channels.
"""

from __future__ import annotations

import copy

from igc.deploy.chain.ops import ActOp, ConvOp, Op, PermOp, inverse


def _permute_output(conv: ConvOp, index) -> None:
    """``P(conv(x))`` as one convolution: only valid for dense or depthwise convs."""
    index = index.to(conv.weight.device)
    conv.weight = conv.weight[index]
    if conv.bias is not None:
        conv.bias = conv.bias[index]


def _passes_through(op: Op) -> bool:
    """Operations a permutation commutes with (changing the operation's parameters)."""
    return isinstance(op, ActOp) or (isinstance(op, ConvOp) and op.depthwise)


def _absorbs_output(op: Op) -> bool:
    """Operations whose output a permutation can be written into for free."""
    return isinstance(op, ConvOp) and (op.pointwise or op.dense)


def move_permutations(ops: list[Op]) -> list[Op]:
    """Apply the exact rewrites of the module docstring until none applies.

    A permutation goes *backwards* when it can reach, through activations and depthwise
    convolutions only, a pointwise or dense convolution (the end of a linear segment,
    where it is free); otherwise *forwards*, through the same operations, into the next
    segment (or a dense convolution, which absorbs it). It stays where it is when a
    non-depthwise spatial convolution blocks it on both sides. The input list is not
    changed.
    """
    ops = [copy.copy(op) for op in ops]
    changed = True
    while changed:
        changed = False
        for i, op in enumerate(ops):
            if not isinstance(op, PermOp):
                continue
            if op.identity:
                del ops[i]
                changed = True
                break
            prev = ops[i - 1] if i > 0 else None
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if isinstance(nxt, PermOp):  # x[p][q] = x[p[q]]
                ops[i:i + 2] = [PermOp(op.index[nxt.index])]
                changed = True
                break
            if isinstance(nxt, ConvOp) and nxt.dense:  # absorb into the input channels
                nxt.weight = nxt.weight[:, inverse(op.index).to(nxt.weight.device)]
                del ops[i]
                changed = True
                break
            j = i - 1
            while j >= 0 and _passes_through(ops[j]):
                j -= 1
            if j >= 0 and _absorbs_output(ops[j]):  # backwards
                if isinstance(prev, ConvOp) and prev.pointwise and not prev.dense:
                    continue  # at the end of a linear segment: free there
                if isinstance(prev, ActOp):
                    ops[i - 1:i + 1] = [op, prev]
                elif isinstance(prev, ConvOp) and prev.depthwise:
                    # P(dw(x)) = dw'(P x) with dw' = dw's channels permuted by P
                    _permute_output(prev, op.index)
                    ops[i - 1:i + 1] = [op, prev]
                else:  # a dense convolution: permute its output channels
                    _permute_output(prev, op.index)
                    del ops[i]
                changed = True
                break
            if isinstance(nxt, ActOp):
                ops[i:i + 2] = [nxt, op]
                changed = True
                break
            if isinstance(nxt, ConvOp) and nxt.depthwise:
                _permute_output(nxt, inverse(op.index))
                ops[i:i + 2] = [nxt, op]
                changed = True
                break
    return ops


__all__ = ["move_permutations"]
