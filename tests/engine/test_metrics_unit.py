"""engine/metrics.py against hand-computed values (SEMANTICS v3 section 4), and the checks that a
dataset and a model can give a metric what it needs (answers against the OUTPUT vocabulary).

The logits are written out: log(1), log(2), log(3), log(4) give softmax 0.1, 0.2, 0.3, 0.4 exactly."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from circuitdsl.datasets.core import Dataset, Example  # noqa: E402
from circuitdsl.diagnostics import CircuitError  # noqa: E402
from circuitdsl.engine.data import validate  # noqa: E402
from circuitdsl.engine.metrics import check_metric, kl_values, metric_values  # noqa: E402
from circuitdsl.ir import MetricKind as M  # noqa: E402

LN = math.log
P = [0.1, 0.2, 0.3, 0.4]
L1 = [LN(1), LN(2), LN(3), LN(4)]  # softmax = P
L2 = [0.0, 0.0, 0.0, 0.0]  # softmax = 1/4 each


def T(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def ex(answers, wrongs=(), scored=(3,), targets=(), tokens=(0, 1, 2, 3)):
    return Example.make(list(tokens), answers, wrongs=wrongs, scored=scored, targets=targets)


def value(kind, logits, e, model_logits=None):
    return float(metric_values(kind, [logits], [e], [model_logits if model_logits is not None else logits])[0])


# ---- one scored position, single answer 3 (p = 0.4), wrong 0 (p = 0.1) -------------------------------


def test_logit_diff():
    assert value(M.LOGIT_DIFF, T(L1), ex(3, 0)) == pytest.approx(LN(4) - LN(1), abs=1e-6)
    assert value(M.LOGIT_DIFF, T(L1), ex(0, 3)) == pytest.approx(-LN(4), abs=1e-6)


def test_prob_diff():
    assert value(M.PROB_DIFF, T(L1), ex(3, 0)) == pytest.approx(0.4 - 0.1, abs=1e-6)
    assert value(M.PROB_DIFF, T(L1), ex(1, 2)) == pytest.approx(0.2 - 0.3, abs=1e-6)


def test_margin():
    # answer minus the largest other logit: log 4 - log 3; for answer 1: log 2 - log 4
    assert value(M.MARGIN, T(L1), ex(3)) == pytest.approx(LN(4 / 3), abs=1e-6)
    assert value(M.MARGIN, T(L1), ex(1)) == pytest.approx(LN(2 / 4), abs=1e-6)
    assert value(M.MARGIN, T([5.0, 1.0, 5.0, 0.0]), ex(0)) == 0.0  # a tie: not the unique argmax


def test_logprob_prob_loss():
    assert value(M.LOGPROB, T(L1), ex(3)) == pytest.approx(LN(0.4), abs=1e-6)
    assert value(M.PROB, T(L1), ex(3)) == pytest.approx(0.4, abs=1e-6)
    assert value(M.LOSS, T(L1), ex(3)) == pytest.approx(-LN(0.4), abs=1e-6)
    assert value(M.LOSS, T(L2), ex(1)) == pytest.approx(LN(4), abs=1e-6)
    # log-softmax, not log of the raw logit nor softmax over the wrong axis
    assert value(M.LOGPROB, T([10.0, 10.0, 10.0, 10.0]), ex(2)) == pytest.approx(-LN(4), abs=1e-6)


def test_accuracy():
    assert value(M.ACCURACY, T(L1), ex(3)) == 1.0
    assert value(M.ACCURACY, T(L1), ex(2)) == 0.0
    assert value(M.ACCURACY, T([5.0, 1.0, 5.0, 0.0]), ex(0)) == 0.0  # a tie is not "the argmax"


def test_mse_reads_the_single_output_unit():
    e = ex((), targets=(1.0,))
    assert value(M.MSE, T([2.5]), e) == pytest.approx(-((2.5 - 1.0) ** 2))
    assert value(M.MSE, T([-0.5]), ex((), targets=(1.0,))) == pytest.approx(-2.25)


def test_kl_direction_is_model_to_evaluated():
    # KL(p || q), p = model = (0.1, 0.2, 0.3, 0.4), q = evaluated = uniform
    kl_pq = sum(p * LN(p / 0.25) for p in P)
    kl_qp = sum(0.25 * LN(0.25 / p) for p in P)
    assert abs(kl_pq - kl_qp) > 0.01
    assert float(kl_values([T(L1)], [T(L2)])[0]) == pytest.approx(kl_pq, abs=1e-6)
    # the metric `kl` of an evaluated run is KL(model || evaluated)
    assert value(M.KL, T(L2), ex(3), model_logits=T(L1)) == pytest.approx(kl_pq, abs=1e-6)
    assert value(M.KL, T(L1), ex(3), model_logits=T(L1)) == pytest.approx(0.0, abs=1e-9)


# ---- answer sets (greater-than: years above vs at-or-below) -------------------------------------------


def test_logit_diff_with_answer_sets():
    # mean logit over {2, 3} minus mean logit over {0, 1}
    e = ex([[2, 3]], [[0, 1]])
    assert value(M.LOGIT_DIFF, T(L1), e) == pytest.approx((LN(3) + LN(4)) / 2 - (LN(1) + LN(2)) / 2, abs=1e-6)
    # a set on one side only
    e = ex([[2, 3]], [0])
    assert value(M.LOGIT_DIFF, T(L1), e) == pytest.approx((LN(3) + LN(4)) / 2 - LN(1), abs=1e-6)


def test_prob_diff_with_answer_sets():
    assert value(M.PROB_DIFF, T(L1), ex([[2, 3]], [[0, 1]])) == pytest.approx(0.7 - 0.3, abs=1e-6)
    assert value(M.PROB_DIFF, T(L1), ex([[1, 2, 3]], [0])) == pytest.approx(0.9 - 0.1, abs=1e-6)


# ---- several scored positions: the mean over positions ------------------------------------------------


def test_scored_positions_are_averaged():
    e = ex([3, 1], [0, 3], scored=(2, 3))
    lg = T(L1, L2)
    assert value(M.LOGIT_DIFF, lg, e) == pytest.approx(((LN(4) - LN(1)) + 0.0) / 2, abs=1e-6)
    assert value(M.LOGPROB, lg, e) == pytest.approx((LN(0.4) + LN(0.25)) / 2, abs=1e-6)
    assert value(M.ACCURACY, lg, e) == pytest.approx(0.5)
    assert value(M.MARGIN, lg, e) == pytest.approx((LN(4 / 3) + 0.0) / 2, abs=1e-6)
    e = ex([[2, 3], 1], [0, [0, 2]], scored=(2, 3))
    assert value(M.PROB_DIFF, lg, e) == pytest.approx(((0.7 - 0.1) + (0.25 - 0.5)) / 2, abs=1e-6)
    assert value(M.MSE, T([1.0], [3.0]), ex((), scored=(2, 3), targets=(0.0, 1.0))) == pytest.approx(-(1 + 4) / 2)
    kl = float(kl_values([T(L1, L1)], [T(L2, L1)])[0])
    assert kl == pytest.approx(sum(p * LN(p / 0.25) for p in P) / 2, abs=1e-6)


def test_per_example_values_keep_example_order():
    es = [ex(3, 0), ex(0, 3)]
    out = metric_values(M.LOGIT_DIFF, [T(L1), T(L1)], es, [T(L1), T(L1)])
    assert out[0] == pytest.approx(LN(4), abs=1e-6) and out[1] == pytest.approx(-LN(4), abs=1e-6)


# ---- what a metric needs ----------------------------------------------------------------------------------


def _codes(fn):
    with pytest.raises(CircuitError) as e:
        fn()
    return [d.code for d in e.value.diagnostics]


def test_logit_diff_and_prob_diff_need_wrong_answers():
    for k in (M.LOGIT_DIFF, M.PROB_DIFF):
        assert _codes(lambda k=k: check_metric(k, [ex(3)], d_vocab_out=4)) == ["E419"]
    check_metric(M.LOGPROB, [ex(3)], d_vocab_out=4)


def test_single_answer_metrics_refuse_answer_sets():
    for k in (M.MARGIN, M.LOGPROB, M.PROB, M.LOSS, M.ACCURACY):
        assert _codes(lambda k=k: check_metric(k, [ex([[2, 3]], [0])], d_vocab_out=4)) == ["E431"]
    check_metric(M.LOGIT_DIFF, [ex([[2, 3]], [[0, 1]])], d_vocab_out=4)
    check_metric(M.KL, [ex([[2, 3]], [[0, 1]])], d_vocab_out=4)
    # sets of one token are single answers
    singles = Example(tokens=(0, 1, 2, 3), answers=(3,), wrongs=(0,), answer_sets=((3,),), wrong_sets=((0,),))
    check_metric(M.MARGIN, [singles], d_vocab_out=4)
    assert value(M.MARGIN, T(L1), singles) == pytest.approx(LN(4 / 3), abs=1e-6)


def test_mse_needs_targets_and_one_output_unit():
    assert _codes(lambda: check_metric(M.MSE, [ex(3)], d_vocab_out=1)) == ["E432"]
    assert _codes(lambda: check_metric(M.MSE, [ex((), targets=(1.0,))], d_vocab_out=4)) == ["E432"]
    check_metric(M.MSE, [ex((), targets=(1.0,))], d_vocab_out=1)


def test_answer_metrics_need_answers():
    assert _codes(lambda: check_metric(M.LOGPROB, [ex((), targets=(1.0,))], d_vocab_out=4)) == ["E416"]


def test_margin_and_accuracy_need_two_output_tokens():
    assert _codes(lambda: check_metric(M.MARGIN, [ex(0)], d_vocab_out=1)) == ["E432"]
    assert _codes(lambda: check_metric(M.ACCURACY, [ex(0)], d_vocab_out=1)) == ["E432"]
    check_metric(M.MARGIN, [ex(0)], d_vocab_out=2)
    check_metric(M.ACCURACY, [ex(1)], d_vocab_out=2)


# ---- answers are checked against the OUTPUT vocabulary ------------------------------------------------


def _ds(*examples):
    return Dataset("d", tuple(examples))


def test_answer_beyond_a_smaller_output_vocab_is_a_diagnostic_not_an_indexerror():
    # d_vocab = 8 (inputs), d_vocab_out = 4: answer 5 is a valid input token but not an output
    assert _codes(lambda: validate(_ds(ex(5, 0, tokens=(7, 1, 2, 3))), None, 8, vocab_out=4)) == ["E414"]
    assert _codes(lambda: validate(_ds(ex([[1, 5]], 0)), None, 8, vocab_out=4)) == ["E414"]
    assert _codes(lambda: validate(_ds(ex(1, [[0, 6]])), None, 8, vocab_out=4)) == ["E414"]


def test_answer_in_a_larger_output_vocab_is_accepted():
    # d_vocab = 4, d_vocab_out = 12: answer 10 is valid; input token 10 is not
    validate(_ds(ex(10, 11)), None, 4, vocab_out=12)
    assert _codes(lambda: validate(_ds(ex(1, 2, tokens=(0, 1, 10, 3))), None, 4, vocab_out=12)) == ["E414"]


def test_mse_rows_need_no_answer():
    validate(_ds(ex((), targets=(2.0,))), None, 4, vocab_out=1)


def test_metric_diagnostics_point_at_the_example_row_when_it_has_one():
    import dataclasses

    from circuitdsl.ir import Span

    row, stmt = Span("d.jsonl", 7, 1, 7, 20), Span("h.circuit", 2, 1, 2, 30)

    def spans(kind, e):
        with pytest.raises(CircuitError) as err:
            check_metric(kind, [e], d_vocab_out=4, span=stmt)
        return [d.span for d in err.value.diagnostics]

    for kind, e in (
        (M.LOGPROB, ex((), targets=(1.0,))),
        (M.LOGIT_DIFF, ex(3)),
        (M.MARGIN, ex([[2, 3]], [0])),
        (M.MSE, ex(3)),
    ):
        if kind is M.MSE:
            with pytest.raises(CircuitError) as err:
                check_metric(kind, [dataclasses.replace(e, origin=row)], d_vocab_out=1, span=stmt)
            assert [d.span for d in err.value.diagnostics] == [row]
            continue
        assert spans(kind, dataclasses.replace(e, origin=row)) == [row]
        assert spans(kind, e) == [stmt]
