"""The never-seen rules (core/method/rules.py): each forget answer aimed at a quantile of the
never-seen NLL distribution, pushed no further (bounded), or its whole prediction set to a
never-seen version of the original's (match)."""

import pytest
import torch

from mape_unlearn.core.method.architectures import module_weight_masks
from mape_unlearn.core.method.rules import _never_seen_prediction, bounded_term
from mape_unlearn.core.method.stopping import never_seen_nll
from mape_unlearn.core.method.unlearning import masked_unlearn
from tests.conftest import random_batch
from tests.core.test_unlearning import CPU, _selection, _settings

# never-seen NLLs; torch.quantile at the rank midpoints of a batch of 4 (0.125 .. 0.875,
# interpolating between order statistics at 7 q) gives 1.75, 3.25, 4.75, 6.25
NEVER_SEEN = torch.tensor([0.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0, 8.0])


def test_each_answer_is_aimed_at_the_never_seen_quantile_of_its_rank():
    # ranks 2, 0, 3, 1 -> targets 4.75, 1.75, 6.25, 3.25
    nll = [4.0, 0.5, 9.0, 3.5]
    targets = torch.quantile(NEVER_SEEN, torch.tensor([0.625, 0.125, 0.875, 0.375]))
    expected = (targets - torch.tensor(nll)).clamp(min=0).sum() / 4
    loss = bounded_term(torch.tensor(nll), 4, NEVER_SEEN)
    assert float(loss) == pytest.approx(float(expected))
    assert float(loss) == pytest.approx((0.75 + 1.25) / 4)


def test_bounded_pushes_an_answer_only_while_it_is_likelier_than_its_target():
    per_token = torch.tensor([4.0, 0.5, 9.0, 3.5], requires_grad=True)  # targets as above
    bounded_term(per_token, 4, NEVER_SEEN).backward()
    assert per_token.grad.tolist() == pytest.approx([-0.25, -0.25, 0.0, 0.0])


def test_match_puts_the_never_seen_probability_on_the_true_token_and_the_rest_as_before():
    # one answer of two tokens over a vocabulary of 4; true tokens 0 and 2
    reference = torch.log(torch.tensor([[[0.7, 0.2, 0.05, 0.05], [0.1, 0.3, 0.4, 0.2]]]))
    true = torch.tensor([[[0], [2]]])
    aim = torch.tensor([2.0])  # never-seen NLL per token: probability exp(-2) on the true token
    target = _never_seen_prediction(reference, true, aim)
    p = float(torch.exp(torch.tensor(-2.0)))
    others_0 = torch.tensor([0.2, 0.05, 0.05]) / 0.3 * (1 - p)
    others_1 = torch.tensor([0.1, 0.3, 0.2]) / 0.6 * (1 - p)
    expected = torch.tensor([[[p, *others_0.tolist()], [others_1[0], others_1[1], p, others_1[2]]]])
    torch.testing.assert_close(target, expected)


def test_never_seen_nll_is_each_answers_nll_per_scored_token(model):
    data = random_batch(5, seed=3)
    settings = _settings(batch_size=2, forget_tokens="answer")
    levels = never_seen_nll(model, data, settings)
    from mape_unlearn.core.method.losses import answer_nll

    with torch.no_grad():
        nll, counts = answer_nll(model.eval(), data)
    torch.testing.assert_close(levels, nll / counts)


# match moves more slowly: it sets every token's prediction, not the true token's NLL alone
@pytest.mark.parametrize("rule, left", [("bounded", 0.6), ("match", 0.9)])
def test_a_never_seen_rule_moves_the_forget_answers_toward_their_levels(model, rule, left):
    forget, retain = random_batch(6, seed=1), random_batch(8, seed=2)
    settings = _settings(
        rule=rule, max_steps=40, lr=3e-2, alpha=0.0, batch_size=6, forget_tokens="answer"
    )
    before = never_seen_nll(model, forget, settings)
    levels = before + 1.0  # a never-seen distribution one nat per token above the model's
    masks = module_weight_masks(model, *_selection(model))
    unlearned, _ = masked_unlearn(
        model, forget, retain, masks, settings, None, CPU, never_seen=levels
    )
    after = never_seen_nll(unlearned, forget, settings)
    gap_before = (levels.sort().values - before.sort().values).abs().mean()
    gap_after = (levels.sort().values - after.sort().values).abs().mean()
    assert gap_after < left * gap_before


@pytest.mark.parametrize("rule", ["bounded", "match"])
def test_a_never_seen_rule_without_never_seen_levels_names_the_setting(model, rule):
    masks = module_weight_masks(model, *_selection(model))
    with pytest.raises(ValueError, match=f"unlearn.rule='{rule}'.*never_seen"):
        masked_unlearn(
            model, random_batch(6, seed=1), random_batch(8, seed=2), masks,
            _settings(rule=rule), None, CPU,
        )  # fmt: skip
