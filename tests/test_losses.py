"""Tests for hsickit.core.losses: the grouped (taxonomic) loss and multi-label losses."""
import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the test machine is shared; small models run faster single-threaded
import torch.nn.functional as F

from hsickit import HsickitError
from hsickit.core.losses import (
    FocalBCELoss,
    GroupedLoss,
    MultiLabelBCELoss,
    TaxonomicLoss,
    group_logsumexp,
    grouped_log_probs,
    grouped_loss,
)


def direct_loss(logits, target, maps, weights):
    """The probability-space formula, written the obvious way, in float64."""
    p = torch.softmax(logits.double(), dim=1).numpy()
    total = []
    for i, t in enumerate(target.tolist()):
        value = -weights[0] * np.log(p[i, t])
        for w, gm in zip(weights[1:], maps):
            gm = np.asarray(gm)
            value -= w * np.log(p[i, gm == gm[t]].sum())
        total.append(value)
    return float(np.mean(total))


@pytest.mark.parametrize("weights", [(1, 1, 1), (1.0, 0.3, 2.0), (0.0, 1.0, 0.0)])
def test_equals_probability_space_formula(weights):
    gen = torch.Generator().manual_seed(0)
    genus = [0, 0, 1, 1, 1, 2, 3]
    family = [0, 0, 0, 0, 0, 1, 1]
    logits = torch.randn(16, 7, generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, 7, (16,), generator=gen)
    got = GroupedLoss([genus, family], weights=weights)(logits, target)
    assert float(got) == pytest.approx(direct_loss(logits, target, [genus, family], weights), rel=1e-10)


def test_any_number_of_levels_and_non_nested_groups():
    gen = torch.Generator().manual_seed(1)
    maps = [[0, 1, 0, 1, 2], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [3, 2, 1, 0, 0]]
    weights = (1.0, 0.5, 0.25, 1.0, 2.0)
    logits = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 5, (9,), generator=gen)
    got = grouped_loss(logits, target, maps, weights)
    assert float(got) == pytest.approx(direct_loss(logits, target, maps, weights), rel=1e-10)


def test_cross_entropy_is_the_special_case():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 6, generator=gen)
    target = torch.randint(0, 6, (8,), generator=gen)
    ce = F.cross_entropy(logits, target)
    assert torch.allclose(GroupedLoss()(logits, target), ce)
    assert torch.allclose(GroupedLoss([[0, 0, 1, 1, 2, 2]], weights=(1, 0))(logits, target), ce)



def test_label_smoothing_matches_torch_and_leaves_group_terms_alone():
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(10, 6, generator=gen, dtype=torch.float64) * 2
    target = torch.randint(0, 6, (10,), generator=gen)
    smooth = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(GroupedLoss(label_smoothing=0.1)(logits, target), smooth)
    genus = [0, 0, 1, 1, 2, 2]
    group_part = GroupedLoss([genus], weights=(0.0, 1.0))(logits, target)
    assert torch.allclose(GroupedLoss([genus], label_smoothing=0.1)(logits, target), smooth + group_part)
    with pytest.raises(HsickitError, match="label_smoothing"):
        GroupedLoss(label_smoothing=1.0)

def test_reductions():
    logits = torch.randn(5, 4)
    target = torch.tensor([0, 1, 2, 3, 0])
    per = GroupedLoss([[0, 0, 1, 1]], reduction="none")(logits, target)
    assert per.shape == (5,)
    assert torch.allclose(GroupedLoss([[0, 0, 1, 1]], reduction="sum")(logits, target), per.sum())
    assert torch.allclose(GroupedLoss([[0, 0, 1, 1]])(logits, target), per.mean())


def test_stable_with_10000_leaves_and_extreme_logits():
    gen = torch.Generator().manual_seed(3)
    n_leaves = 10_000
    genus = torch.randint(0, 2_000, (n_leaves,), generator=gen)
    genus = torch.unique(genus, return_inverse=True)[1].numpy()
    family = genus % 300
    family = np.unique(family, return_inverse=True)[1]
    logits = torch.randn(32, n_leaves, generator=gen) * 1e4  # extreme spread
    logits[0, :] = 0.0
    logits[1, 5] = 1e30  # one huge logit
    logits[2, :] = -1e30
    logits.requires_grad_(True)
    target = torch.randint(0, n_leaves, (32,), generator=gen)
    loss = TaxonomicLoss([genus, family])(logits, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()
    # a confident correct prediction gives a loss near zero, not NaN
    sure = torch.full((1, n_leaves), -1e4)
    sure[0, 7] = 1e4
    assert float(TaxonomicLoss([genus, family])(sure, torch.tensor([7]))) == pytest.approx(0.0, abs=1e-6)
    # and a uniform output gives log(n_leaves) + log(n_leaves / |genus|) + ...
    uni = TaxonomicLoss([genus, family])(torch.zeros(1, n_leaves), torch.tensor([7]))
    g, f = genus[7], family[7]
    expected = np.log(n_leaves) - np.log((genus == g).sum() / n_leaves) - np.log((family == f).sum() / n_leaves)
    assert float(uni) == pytest.approx(expected, rel=1e-5)


def test_gradient_matches_probability_space_autograd():
    gen = torch.Generator().manual_seed(4)
    maps = [[0, 0, 1, 2, 2], [0, 0, 0, 1, 1]]
    logits = torch.randn(4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2, 4, 3])
    GroupedLoss(maps)(logits, target).backward()
    g1 = logits.grad.clone()
    logits.grad = None
    p = torch.softmax(logits, 1)
    loss = -torch.log(p[torch.arange(4), target])
    for gm in maps:
        gm = torch.tensor(gm)
        member = (gm[None, :] == gm[target][:, None]).double()
        loss = loss - torch.log((p * member).sum(1))
    loss.mean().backward()
    assert torch.allclose(g1, logits.grad)


def test_level_probs_sum_to_one_and_are_group_sums():
    logits = torch.randn(3, 6)
    maps = [[0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 1, 1]]
    levels = grouped_log_probs(logits, maps)
    assert [lp.shape[1] for lp in levels] == [6, 3, 2]
    for lp in levels:
        assert torch.allclose(lp.exp().sum(1), torch.ones(3), atol=1e-6)
    p = levels[0].exp()
    assert torch.allclose(levels[1].exp()[:, 1], p[:, 2] + p[:, 3], atol=1e-6)
    assert torch.allclose(GroupedLoss(maps).level_log_probs(logits)[2], levels[2])


def test_group_logsumexp_empty_group_is_minus_inf():
    out = group_logsumexp(torch.zeros(2, 3), torch.tensor([0, 0, 2]), 3)
    assert torch.isneginf(out[:, 1]).all()
    assert torch.allclose(out[:, 0], torch.log(torch.tensor(2.0)).expand(2))


def test_bad_inputs_are_named():
    with pytest.raises(HsickitError, match="one weight per level"):
        GroupedLoss([[0, 1]], weights=(1, 1, 1))
    with pytest.raises(HsickitError, match="level 3 has 3 entries"):
        GroupedLoss([[0, 1], [0, 1, 1]])
    with pytest.raises(HsickitError, match="integer"):
        GroupedLoss([[0.5, 1.0]])
    with pytest.raises(HsickitError, match="leaf columns"):
        GroupedLoss([[0, 1]])(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(HsickitError, match=">= 0"):
        GroupedLoss([[0, 1]], weights=(1, -1))


def test_multilabel_losses():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 1.0]])
    assert torch.allclose(MultiLabelBCELoss()(logits, target), F.binary_cross_entropy_with_logits(logits, target))
    pw = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(MultiLabelBCELoss(pos_weight=pw)(logits, target),
                          F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw))
    assert torch.allclose(FocalBCELoss(gamma=0.0)(logits, target), F.binary_cross_entropy_with_logits(logits, target))
    # focusing down-weights the easy, confident example more than the hard one
    easy = FocalBCELoss(gamma=2.0)(torch.tensor([[4.0]]), torch.tensor([[1.0]]))
    hard = FocalBCELoss(gamma=2.0)(torch.tensor([[-1.0]]), torch.tensor([[1.0]]))
    bce_easy = F.binary_cross_entropy_with_logits(torch.tensor([[4.0]]), torch.tensor([[1.0]]))
    bce_hard = F.binary_cross_entropy_with_logits(torch.tensor([[-1.0]]), torch.tensor([[1.0]]))
    assert easy / bce_easy < hard / bce_hard
