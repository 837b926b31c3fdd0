"""VadCLIP's learnable text prompt, run through the frozen text tower of an open_clip ``CLIP`` model.

One learnable table ``P`` (context_length x text_width, N(0, 0.01)) is shared by all classes and indexed by absolute
position. For a class name of ``n`` tokens (prefix = postfix = 10 by default) the embedded sequence is::

    position  0               SOT token embedding
              1 .. pre        P[1 .. pre]
              pre+1 .. pre+n  name token embeddings
              pre+n+1 .. pre+n+post   P[pre+n+1 .. pre+n+post]
              pre+n+post+1    EOT token embedding
              the rest        P[pre+n+post+2 ..]

It then follows open_clip 3.3.0 ``CLIP.encode_text`` step for step (cast to the tower's dtype, + positional_embedding,
``transformer(x, attn_mask=attn_mask)`` (the Transformer handles batch_first itself), ``ln_final``, take the EOT
position, ``text_projection``), with the embedded sequence in place of ``token_embedding(text)``. The CLIP model is
passed to every call and never stored here, so it is neither a submodule nor in this module's ``state_dict``; it is only
read (its parameters should have ``requires_grad=False``; gradients flow through it to ``P``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_POOLS_AT_EOT = ("argmax", "eos")


def _text_dims(clip_model: nn.Module) -> tuple[int, int]:
    """``(context_length, text_width)`` of an open_clip ``CLIP`` text tower."""
    for name in ("token_embedding", "positional_embedding", "transformer", "ln_final"):
        if not hasattr(clip_model, name):
            raise TypeError(f"clip_model has no {name!r}: an open_clip CLIP (not CustomTextCLIP) model is required")
    ctx, width = clip_model.positional_embedding.shape
    return int(ctx), int(width)


def text_output_dim(clip_model: nn.Module) -> int:
    """Dimension of the text feature (after ``text_projection``)."""
    proj = clip_model.text_projection
    if proj is None:
        return _text_dims(clip_model)[1]
    if isinstance(proj, nn.Linear):
        return int(proj.out_features)
    return int(proj.shape[1])


class PromptLearner(nn.Module):
    """Learnable prompt table + the fixed token layout of each class name.

    ``class_names`` are tokenised with ``tokenizer`` (an open_clip tokenizer: SOT first, EOT after the name; its EOT id
    is ``tokenizer.eot_token_id`` or else the largest id of the row, as CLIP's ``argmax`` pooling assumes).
    """

    def __init__(self, class_names: Sequence[str], clip_model: nn.Module, tokenizer, prefix: int = 10,
                 postfix: int = 10):
        super().__init__()
        pool = getattr(clip_model, "text_pool_type", "argmax")
        if pool not in _POOLS_AT_EOT:
            raise ValueError(f"text_pool_type {pool!r} is not supported: VadCLIP reads the EOT position")
        ctx, width = _text_dims(clip_model)
        self.class_names = list(class_names)
        self.prefix, self.postfix = int(prefix), int(postfix)
        self.prompt = nn.Parameter(torch.empty(ctx, width))
        nn.init.normal_(self.prompt, std=0.01)

        tokens = tokenizer(self.class_names)
        tokens = torch.as_tensor(tokens, dtype=torch.long).cpu()
        eot_id = getattr(tokenizer, "eot_token_id", None)
        layout = torch.zeros(len(self.class_names), ctx, dtype=torch.long)
        is_token = torch.zeros(len(self.class_names), ctx, dtype=torch.bool)
        eot_pos = torch.zeros(len(self.class_names), dtype=torch.long)
        for i, row in enumerate(tokens):
            end = int((row == eot_id).nonzero()[0, 0]) if eot_id is not None and (row == eot_id).any() \
                else int(row.argmax())
            name = row[1:end]  # tokens between SOT and EOT
            n = int(name.numel())
            eot = self.prefix + n + self.postfix + 1
            if eot >= ctx:
                raise ValueError(f"class name {self.class_names[i]!r} ({n} tokens) does not fit the context of {ctx} "
                                 f"with prefix {self.prefix} and postfix {self.postfix}")
            layout[i, 0] = row[0]
            layout[i, self.prefix + 1:self.prefix + 1 + n] = name
            layout[i, eot] = row[end]
            is_token[i, 0] = True
            is_token[i, self.prefix + 1:self.prefix + 1 + n] = True
            is_token[i, eot] = True
            eot_pos[i] = eot
        self.register_buffer("layout", layout, persistent=False)
        self.register_buffer("is_token", is_token, persistent=False)
        self.register_buffer("eot_pos", eot_pos, persistent=False)

    def embedded(self, clip_model: nn.Module) -> torch.Tensor:
        """The embedded prompt sequences, ``(C, context_length, text_width)`` in float32."""
        words = clip_model.token_embedding(self.layout).float()
        table = self.prompt.unsqueeze(0).expand_as(words)
        return torch.where(self.is_token.unsqueeze(-1), words, table)

    def forward(self, clip_model: nn.Module) -> torch.Tensor:
        """Class text features ``(C, D)`` in float32 (not normalised), gradients flowing to the prompt table."""
        modules = list(clip_model.modules())
        modes = [m.training for m in modules]
        clip_model.eval()  # deterministic text tower; each submodule's own mode is restored below
        try:
            cast_dtype = clip_model.transformer.get_cast_dtype()
            x = self.embedded(clip_model).to(cast_dtype)
            x = x + clip_model.positional_embedding.to(cast_dtype)
            x = clip_model.transformer(x, attn_mask=clip_model.attn_mask)
            x = clip_model.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), self.eot_pos]
            proj = clip_model.text_projection
            if proj is not None:
                x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        finally:
            for m, mode in zip(modules, modes):
                m.training = mode
        return x.float()
