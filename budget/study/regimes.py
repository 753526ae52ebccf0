"""Compute-price regimes: how dear compute is against labels, for the decision study.

With a 110M teacher, compute costs fractions of a cent at A100 prices and the decision is trivial.
A regime multiplies what the distillation's phases cost (``[prices] phase_scale``), so that the
trade-off of Kang, Xu and Ritter (ACL 2023) appears; the ledger charges the scaled prices, so a
run's report stays exact. The student's own fine-tuning after new labels is never scaled.

``cheap``
    Today's pricing: nothing scaled.
``batch``
    One distillation over the pool costs about one annotation batch.
``several``
    One distillation over the pool costs about four annotation batches.
``llm`` and ``llm-local``
    The teacher is a prompted chat LLM (``[models] teacher_mode = "prompt"``, the project's ``[llm] model`` or
    SmolLM2-135M-Instruct run in this process), charged per token: ``llm`` at a hosted provider's list price
    (OpenAI's gpt-4o-mini, $0.15 a million input and $0.60 a million output tokens), ``llm-local`` at what a
    small model costs on a rented GPU (an H100 at $2.50 an hour prefills a 135M model's prompts at well over
    100,000 tokens a second: under $0.01 a million tokens). Nothing is fine-tuned; nothing else is scaled.
``paper``
    The paper's own setting, derived per phase from FLOPs (see the decision study in
    ``benchmarks/README.md``): a T5-XXL teacher (11B) has about 100x the parameters, hence the
    FLOPs per token, of MPNet-base (110M); it was fine-tuned for 20 epochs (``teacher_finetune``
    x 100 x 20 / our teacher epochs), and the student was distilled for 50 epochs with a teacher
    forward at every step instead of our one cached pass (``soft_labels`` x 100 x 50), for 50
    student epochs instead of ours (``student_distill`` x 50 / our distillation epochs).
"""

from __future__ import annotations

from budget.config import ProjectConfig

__all__ = ["LLM_PRICES", "REGIMES", "in_regime", "regime_scale"]

REGIMES = ("cheap", "batch", "several", "paper", "llm", "llm-local")
#: the prompted-LLM regimes' dollars per million input and output tokens
LLM_PRICES = {"llm": ("0.15", "0.60"), "llm-local": ("0.01", "0.01")}
LLM_DEFAULT_MODEL = "smollm2-135m"  # the LLM regimes' teacher when the project names no [llm] model
_DISTILL_PHASES = ("teacher_finetune", "soft_labels", "student_distill")
_PAPER_TEACHER_X = 100  # T5-XXL (11B) FLOPs per token / MPNet-base (110M)
_PAPER_TEACHER_EPOCHS = 20
_PAPER_DISTILL_EPOCHS = 50


def regime_scale(name: str, *, teacher_epochs: int, distill_epochs: int, distill_cost_micro: int,
                 batch_cost_micro: int) -> dict[str, float]:
    """``[prices] phase_scale`` of regime ``name``.

    Parameters
    ----------
    teacher_epochs, distill_epochs : int
        The project's ``[models]`` epochs (the paper regime scales ours to the paper's).
    distill_cost_micro : int
        Estimated cost of one distillation over the pool at today's prices.
    batch_cost_micro : int
        Cost of one annotation batch (batch size x price per item x overlap).
    """
    if name == "cheap" or name in LLM_PRICES:
        return {}
    if name in {"batch", "several"}:
        factor = (1 if name == "batch" else 4) * batch_cost_micro / max(1, distill_cost_micro)
        return {phase: round(max(1.0, factor), 3) for phase in _DISTILL_PHASES}
    if name == "paper":
        return {"teacher_finetune": _PAPER_TEACHER_X * _PAPER_TEACHER_EPOCHS / teacher_epochs,
                "soft_labels": float(_PAPER_TEACHER_X * _PAPER_DISTILL_EPOCHS),
                "student_distill": _PAPER_DISTILL_EPOCHS / distill_epochs}
    raise ValueError(f"Unknown compute-price regime {name!r}; choose {', '.join(REGIMES)}.")


def in_regime(config: ProjectConfig, regime: str, scale: dict[str, float]) -> ProjectConfig:
    """``config`` as a cell of ``regime`` runs it: its phase scale, and in an LLM regime a prompted teacher at
    the regime's token prices."""
    config = config.replace(prices={"phase_scale": dict(scale)})
    if regime not in LLM_PRICES:
        return config
    price_in, price_out = LLM_PRICES[regime]
    return config.replace(models={"teacher_mode": "prompt"},
                          llm={"model": config.llm.model or LLM_DEFAULT_MODEL, "input_per_million": price_in,
                               "output_per_million": price_out})
