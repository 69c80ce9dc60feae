"""falsify prints answers as tokens when the model has a tokenizer (issue 17, item 8): ' Thursday' (14963),
not 14963. A toy tokenizer stands in for the model's."""

from circuitdsl.datasets.core import Example
from circuitdsl.falsify import Counterexample, ScoredInput


class Toy:
    def decode(self, ids):
        return {14963: " Thursday", 11655: " Friday"}[ids[0]]


def _cx(tokenizer):
    e = Example.make([1, 2, 3], [14963], wrongs=[11655], text="Days: Monday,")
    s = ScoredInput(e, 2.0, 0.5, 1.5, False)
    return Counterexample("h", "logit_diff", 1.0, "given", True, s, s, 3, 0, 0.2, 1.5, 2.0, 0, tokenizer=tokenizer)


def test_answers_printed_as_tokens():
    text = _cx(Toy()).render()
    assert "answers: [' Thursday' (14963)], wrong: [' Friday' (11655)]" in text


def test_token_ids_without_a_tokenizer():
    assert "answers: [14963], wrong: [11655]" in _cx(None).render()
