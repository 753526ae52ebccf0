"""The project file's tables: one frozen dataclass per table, every key a field with its default and a comment,
and the checks each value must pass (:class:`ConfigError` names the table, the key, the value and the fix)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from annotation.selection import STRATEGIES
from budget.money import MAX_MICRO, to_micro
from budget.prices import DEFAULT_DEVICE_PRICES, TokenPrice
from modeling.train import SELECT, TrainConfig

__all__ = ["PHASES", "TEACHER_MODES", "Split", "Models", "Prices", "Annotation", "Annotators", "ConnectorSettings",
           "PolicySettings", "Compute", "LLMSettings", "ConfigError", "check_keep", "check_phase_scale"]

#: the compute phases a run meters, by the names the meter gives them (llm_labels: a prompted LLM's, by tokens)
PHASES = ("student_finetune", "teacher_finetune", "soft_labels", "student_distill", "evaluation", "llm_labels")
#: how a distillation's teacher is made: fine-tuned on the labels, or a chat LLM prompted with a few of them
TEACHER_MODES = ("finetune", "prompt")

# A check: (key, ok, what the value must be).
Check = tuple[str, bool, str]


class ConfigError(ValueError):
    """Raised when a project file is missing, unreadable, or has an unknown key or a bad value."""


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _money(v: object, *, inf: bool = False, empty: bool = False) -> bool:
    if not isinstance(v, str):
        return False
    if (inf and v == "inf") or (empty and v == ""):
        return True
    try:
        return 0 <= to_micro(v) <= MAX_MICRO
    except (ValueError, TypeError):
        return False


def check_phase_scale(value: object) -> dict[str, float]:
    """``[prices] phase_scale`` as {phase: multiplier}; raise ValueError naming the fix."""
    if not isinstance(value, dict):
        raise ValueError(f"[prices] phase_scale must be a table like {{teacher_finetune = 100}}; got {value!r}.")
    out = {}
    for phase, factor in value.items():
        if phase not in PHASES:
            raise ValueError(f"[prices] phase_scale names an unknown phase {phase!r}; use {', '.join(PHASES)}.")
        if not _num(factor) and not isinstance(factor, str):
            raise ValueError(f"[prices] phase_scale {phase} must be a number > 0; got {factor!r}.")
        try:
            out[phase] = float(factor)
        except ValueError:
            out[phase] = -1.0
        if not out[phase] > 0:
            raise ValueError(f"[prices] phase_scale {phase} must be a number > 0; got {factor!r}.")
    return out


def check_keep(value: object) -> int | None:
    """``[models] keep`` as a count (None for 'all'); raise ValueError naming the fix."""
    if value == "all":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"[models] keep must be an int >= 1 (the latest students and teachers kept besides the "
                         f"best student) or \"all\"; got {value!r}.")
    return value

@dataclass(frozen=True)
class Split:
    """``[split]``: how the task's rows become the seed, the unlabeled pool and the test set."""

    seed_size: int | str = 100  # labeled rows the team starts with; "all" for every labeled row of real data
    test_size: int | float = 0.2  # held-out test items for reports (simulation only); int or fraction; 0 = none
    max_unlabeled: int = 0  # cap on the unlabeled pool used (0 = all), to bound soft-labelling time
    dev_fraction: float = 0.25  # share of the seed (a random draw) kept as the dev set
    dev_size: int = 100  # grow the dev set to this many items by random draws in annotation batches
    dev_share: float = 0.2  # at most this share of a batch is drawn at random for the dev set

    def checks(self) -> Iterator[Check]:
        yield "seed_size", self.seed_size == "all" or (_int(self.seed_size) and self.seed_size >= 1), \
            'an int >= 1 or "all"'
        yield "test_size", _num(self.test_size) and self.test_size >= 0 and (
            _int(self.test_size) or self.test_size < 1), "an int >= 0 (items) or a fraction in [0, 1)"
        yield "max_unlabeled", _int(self.max_unlabeled) and self.max_unlabeled >= 0, "an int >= 0 (0 = all)"
        yield "dev_fraction", _num(self.dev_fraction) and 0.05 <= self.dev_fraction <= 0.5, \
            "a fraction between 0.05 and 0.5"
        yield "dev_size", _int(self.dev_size) and self.dev_size >= 0, "an int >= 0 (0 = the seed's share only)"
        yield "dev_share", _num(self.dev_share) and 0 <= self.dev_share <= 0.5, "a fraction between 0 and 0.5"


@dataclass(frozen=True)
class Models:
    """``[models]``: the student, the teacher and how they train."""

    student: str = "minilm-l6"  # folder, known name (minilm-l6, mpnet-base) or hub id
    teacher: str = "mpnet-base"  # any AutoModelForSequenceClassification model, decoder LLMs included
    teacher_mode: str = "finetune"  # finetune: fine-tune `teacher` on the labels | prompt: the [llm] model, prompted
    teacher_lora_rank: int = 0  # > 0: fine-tune the teacher's LoRA adapters of this rank (peft), not all weights
    max_length: int = 128  # tokens per example
    batch_size: int = 16
    student_lr: float = 5e-5
    teacher_lr: float = 3e-5
    student_epochs: int = 4  # fine-tuning on gold labels
    teacher_epochs: int = 3
    distill_epochs: int = 2  # student on gold + soft labels
    min_steps: int = 100  # at least this many optimizer steps per training; early stopping waits for them
    temperature: float = 2.0  # distillation temperature T
    alpha: float = 0.5  # weight of gold CE against the KL to soft labels
    class_weight: str = "auto"  # auto: balanced when the task's metric is macro_f1, else none | balanced | none
    patience: int = 2  # dev evaluations without improvement before early stop (select = "best")
    select: str = "last"  # a student's training keeps: last (its end) | best (its best dev evaluation)
    precision: str = "auto"  # auto | bf16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    keep: int | str = 1  # latest students and teachers kept in the run folder besides the best student; "all"

    def checks(self) -> Iterator[Check]:
        for key in ("student", "teacher", "device"):
            yield key, isinstance(getattr(self, key), str) and bool(getattr(self, key)), "a non-empty string"
        yield "max_length", _int(self.max_length) and self.max_length >= 8, "an int >= 8"
        for key in ("batch_size", "student_epochs", "teacher_epochs", "distill_epochs"):
            yield key, _int(getattr(self, key)) and getattr(self, key) >= 1, "an int >= 1"
        for key in ("min_steps", "patience", "teacher_lora_rank"):
            yield key, _int(getattr(self, key)) and getattr(self, key) >= 0, "an int >= 0"
        for key in ("student_lr", "teacher_lr", "temperature"):
            yield key, _num(getattr(self, key)) and getattr(self, key) > 0, "a number > 0"
        yield "alpha", _num(self.alpha) and 0 <= self.alpha <= 1, "a number in [0, 1]"
        yield "precision", self.precision in {"auto", "bf16", "fp32"}, "one of auto, bf16, fp32"
        yield "class_weight", self.class_weight in {"auto", "balanced", "none"}, "one of auto, balanced, none"
        yield "select", self.select in SELECT, "one of " + ", ".join(SELECT)
        yield "teacher_mode", self.teacher_mode in TEACHER_MODES, "one of " + ", ".join(TEACHER_MODES)
        yield "keep", self.keep == "all" or (_int(self.keep) and self.keep >= 1), 'an int >= 1 or "all"'

    @property
    def keep_count(self) -> int | None:
        """``keep`` as a count; None keeps every model."""
        return check_keep(self.keep)

    def train_config(self, role: str, *, seed: int, metric: str, progress: bool = True) -> TrainConfig:
        """Training settings of the student ('student'), the teacher ('teacher') or a distillation ('distill').

        ``class_weight = "auto"`` balances the gold loss's classes when the task is scored by macro-F1, which
        weighs every class alike: on a long-tailed task a student trained on a few dozen labels otherwise
        learns to predict the common classes only.

        ``select`` applies to the student's trainings (on labels, and distilled): the policy compares students
        on the dev set, and a student picked as the best of several dev evaluations carries the dev set's luck
        into that comparison. A teacher is only compared through its students: it keeps its best evaluation.
        """
        class_weight = ("balanced" if metric == "macro_f1" else "none") if self.class_weight == "auto" \
            else self.class_weight
        epochs = {"student": self.student_epochs, "teacher": self.teacher_epochs, "distill": self.distill_epochs}[role]
        return TrainConfig(epochs=epochs, min_steps=self.min_steps, batch_size=self.batch_size,
                           lr=float(self.teacher_lr if role == "teacher" else self.student_lr),
                           max_length=self.max_length, seed=seed, precision=self.precision, device=self.device,
                           patience=self.patience, metric=metric, temperature=float(self.temperature),
                           select="best" if role == "teacher" else self.select,
                           alpha=float(self.alpha), class_weight=class_weight, progress=progress)


@dataclass(frozen=True)
class Prices:
    """``[prices]``: what a label and a unit of compute cost. Money is a string, never a binary float."""

    per_label: str = "0.364"  # dollars per label per annotator (the paper's Stanceosaurus price)
    hourly_wage: str = ""  # dollars per hour; when set, labels are paid by time spent
    seconds_per_label: float = 30.0  # estimate used with hourly_wage before the real lead times come
    overlap: int = 1  # annotators per item; multiplies the label price
    compute: str = "flops"  # flops: priced as time on a reference GPU; device-hours: metered seconds
    reference_gpu: str = "A100-80GB"
    reference_peak_flops: float = 312e12
    reference_utilisation: float = 0.4
    reference_gpu_hour: str = "2.00"
    device_hour: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_DEVICE_PRICES))
    # multiply what a phase costs (FLOPs or seconds before pricing), e.g. {teacher_finetune = 100}: the
    # decision study's compute-price regimes (budget/study/regimes.py); the ledger charges the scaled price
    phase_scale: dict[str, float] = field(default_factory=dict)

    def checks(self) -> Iterator[Check]:
        yield "per_label", _money(self.per_label) and to_micro(self.per_label) > 0, \
            'a dollar amount > 0 as a string, like "0.364"'
        yield "hourly_wage", _money(self.hourly_wage, empty=True), 'a dollar amount as a string, like "15.00", or ""'
        yield "seconds_per_label", _num(self.seconds_per_label) and self.seconds_per_label > 0, "a number > 0"
        yield "overlap", _int(self.overlap) and self.overlap >= 1, "an int >= 1"
        yield "compute", self.compute in {"flops", "device-hours"}, "one of flops, device-hours"
        yield "reference_peak_flops", _num(self.reference_peak_flops) and self.reference_peak_flops > 0, \
            "a number > 0"
        yield "reference_utilisation", _num(self.reference_utilisation) and 0 < self.reference_utilisation <= 1, \
            "a fraction in (0, 1]"
        yield "reference_gpu_hour", _money(self.reference_gpu_hour), 'a dollar amount as a string, like "2.00"'
        yield "device_hour", isinstance(self.device_hour, dict) and all(
            _money(v) for v in self.device_hour.values()), 'a table of dollar strings, like {cpu = "0.10"}'


@dataclass(frozen=True)
class Annotation:
    """``[annotation]``: where labels are bought, how many at a time, and who approves."""

    connector: str = "simulated"  # simulated | labelstudio | argilla
    batch_size: int = 50  # items per annotation round
    selection: str = "entropy"  # random | entropy | margin
    auto_approve_under: str = "inf"  # dollars; batches costing less are approved without a lead
    poll_seconds: float = 30.0  # how often to look for finished work
    wait_seconds: float = 0.0  # real platforms: how long one run waits before exiting (resume later)
    suggestions: bool = True  # send the student's prediction as a pre-annotation
    min_batch: int = 0  # the smallest batch worth its retrain; 0 = a quarter of batch_size

    def checks(self) -> Iterator[Check]:
        yield "connector", self.connector in {"simulated", "labelstudio", "argilla"}, \
            "one of simulated, labelstudio, argilla"
        yield "batch_size", _int(self.batch_size) and self.batch_size >= 1, "an int >= 1"
        yield "selection", self.selection in STRATEGIES, f"one of {', '.join(STRATEGIES)}"
        yield "auto_approve_under", _money(self.auto_approve_under, inf=True), \
            'a dollar amount as a string, like "25.00", or "inf"'
        yield "poll_seconds", _num(self.poll_seconds) and self.poll_seconds > 0, "a number > 0"
        yield "wait_seconds", _num(self.wait_seconds) and self.wait_seconds >= 0, "a number >= 0"
        yield "suggestions", isinstance(self.suggestions, bool), "true or false"
        yield "min_batch", _int(self.min_batch) and self.min_batch >= 0, "an int >= 0 (0 = batch_size / 4)"

    @property
    def min_batch_items(self) -> int:
        """The smallest batch worth its retrain: ``min_batch``, or a quarter of ``batch_size`` (at least 1)."""
        return self.min_batch or max(1, self.batch_size // 4)

    @property
    def auto_approve_micro(self) -> int | None:
        """The auto-approval limit in micro-dollars; None for no limit."""
        return None if self.auto_approve_under == "inf" else to_micro(self.auto_approve_under)


@dataclass(frozen=True)
class Annotators:
    """``[annotators]``: the simulated people (simulation only)."""

    n: int = 3
    error_rate: float = 0.1
    skip_rate: float = 0.05
    latency_s: list[float] = field(default_factory=lambda: [30.0, 120.0])  # seconds per answer, min and max

    def checks(self) -> Iterator[Check]:
        yield "n", _int(self.n) and self.n >= 1, "an int >= 1"
        for key in ("error_rate", "skip_rate"):
            yield key, _num(getattr(self, key)) and 0 <= getattr(self, key) < 1, "a fraction in [0, 1)"
        ok = (isinstance(self.latency_s, list) and len(self.latency_s) == 2 and all(_num(x) for x in self.latency_s)
              and 0 <= self.latency_s[0] <= self.latency_s[1])
        yield "latency_s", ok, "[min, max] seconds with 0 <= min <= max"


@dataclass(frozen=True)
class ConnectorSettings:
    """``[connector]``: the real annotation platform."""

    url: str = ""  # the only host the connector contacts
    api_key_env: str = ""  # the NAME of the environment variable holding the key
    workspace: str = "argilla"
    guidelines: str = ""
    timeout: float = 30.0  # seconds per HTTP request to the platform

    def checks(self) -> Iterator[Check]:
        for key in ("url", "api_key_env", "workspace", "guidelines"):
            yield key, isinstance(getattr(self, key), str), "a string"
        yield "timeout", _num(self.timeout) and self.timeout > 0, "a number > 0"


@dataclass(frozen=True)
class PolicySettings:
    """``[policy]``: which arm gets the next dollars."""

    name: str = "adaptive"  # annotate | distill | split:F | adaptive
    min_points_per_100usd: float = 0.5  # stop when no plan is expected to add this many points per $100 it costs
    stop_confidence: float = 0.8  # the confidence of the ranges the reasons show
    nearly_free_share: float = 0.02  # compute is nearly free when a distillation costs under this share of the budget
    teacher_ensemble: int = 1  # while compute is nearly free, a distillation averages up to this many teachers
    approve_compute_over: str = "inf"  # dollars; compute reservations above need a lead's approval

    def checks(self) -> Iterator[Check]:
        from budget.policy import make_policy

        try:
            make_policy(self.name)
            known = True
        except (ValueError, AttributeError):
            known = False
        yield "name", isinstance(self.name, str) and known, "annotate, distill, split:F (F in [0, 1]) or adaptive"
        yield "min_points_per_100usd", _num(self.min_points_per_100usd) and self.min_points_per_100usd >= 0, \
            "a number >= 0"
        yield "stop_confidence", _num(self.stop_confidence) and 0.5 <= self.stop_confidence < 1, \
            "a probability in [0.5, 1)"
        yield "nearly_free_share", _num(self.nearly_free_share) and 0 <= self.nearly_free_share < 1, \
            "a fraction in [0, 1)"
        yield "teacher_ensemble", _int(self.teacher_ensemble) and self.teacher_ensemble >= 1, "an int >= 1"
        yield "approve_compute_over", _money(self.approve_compute_over, inf=True), \
            'a dollar amount as a string, like "5.00", or "inf"'

    @property
    def approve_compute_micro(self) -> int | None:
        """Compute reservations above this many micro-dollars wait for a lead; None for no limit."""
        return None if self.approve_compute_over == "inf" else to_micro(self.approve_compute_over)


@dataclass(frozen=True)
class Compute:
    """``[compute]``: how many processes (and machines) fine-tune the teacher, through accelerate.

    With ``processes`` x ``machines`` above 1 the teacher's fine-tune runs under ``torchrun`` (one
    process per GPU, or CPU processes over gloo) with the same money limit, metering (the device-seconds
    of every process) and resume as one process (:mod:`modeling.launch`). On several machines, each
    other machine joins with the command the README gives, ``machine_rank`` set to its own rank.
    """

    processes: int = 1  # processes on this machine (one per GPU)
    machines: int = 1
    machine_rank: int = 0  # this machine's rank; 0 runs the controller
    main_address: str = "127.0.0.1"  # machine 0's address, reachable from every machine
    main_port: int = 0  # machine 0's port for the process group; 0 = a free one (one machine only)
    strategy: str = "ddp"  # every process holds the whole teacher; "fsdp" shards its fine-tune
    threads: int = 0  # OMP_NUM_THREADS of each process; 0 = the cores shared out

    def checks(self) -> Iterator[Check]:
        from modeling.launch import STRATEGIES

        for key in ("processes", "machines"):
            yield key, _int(getattr(self, key)) and getattr(self, key) >= 1, "an int >= 1"
        yield "machine_rank", _int(self.machine_rank) and 0 <= self.machine_rank < max(1, int(self.machines)), \
            "an int from 0 to machines - 1"
        yield "main_address", isinstance(self.main_address, str) and bool(self.main_address), "a host name or IP"
        yield "main_port", _int(self.main_port) and 0 <= self.main_port < 65536 and (
            self.main_port > 0 or self.machines == 1), "a port 1-65535 (0, a free port, only on one machine)"
        yield "strategy", self.strategy in STRATEGIES, f"one of {', '.join(STRATEGIES)}"
        yield "threads", _int(self.threads) and self.threads >= 0, "an int >= 0 (0 = the cores shared out)"

    @property
    def world(self) -> int:
        """How many processes train the teacher together."""
        return self.processes * self.machines


@dataclass(frozen=True)
class LLMSettings:
    """``[llm]``: a prompted chat LLM, the third way to spend (soft labels with no fine-tune, or labels).

    ``model`` empty: no LLM. ``url`` empty: the model runs in this process through transformers (a short name
    such as ``smollm2-135m``, a ``.gguf`` file or a folder); set: ``model`` is the model's name on the
    OpenAI-compatible server at ``url``. It is charged per token at the provider's list prices (for a model of
    your own, what its GPU time comes to a token).
    """

    model: str = ""  # empty: no LLM | smollm2-135m | a .gguf file or folder | a model name at url
    url: str = ""  # an OpenAI-compatible API's base URL (http://127.0.0.1:8080/v1); empty: in-process
    api_key_env: str = ""  # the NAME of the environment variable holding the key; empty: a server without keys
    input_per_million: str = ""  # dollars per million input tokens, like "0.15"; required with a model
    output_per_million: str = ""  # dollars per million output tokens, like "0.60"; required with a model
    examples: int = 4  # the team's labelled examples shown in every prompt (few-shot; 0 = zero-shot)
    instructions: str = ""  # what the task is, in a sentence or two, put before the examples
    prompt: str = ""  # a Jinja2 file for the user message (text, labels, examples, instructions); empty: built-in
    max_chars: int = 1000  # each text a prompt shows (the item and each example) cut to this many characters; 0: all
    timeout: float = 60.0  # seconds per request to the server
    retries: int = 3  # further tries of a request a later try may get past (connection, timeout, 429, 5xx)
    batch_size: int = 8  # in-process: requests run together
    device: str = "auto"  # in-process: auto | cpu | cuda | cuda:N | mps

    def checks(self) -> Iterator[Check]:
        for key in ("model", "url", "api_key_env", "instructions", "prompt", "device"):
            yield key, isinstance(getattr(self, key), str), "a string"
        yield "url", not self.url or self.url.startswith(("http://", "https://")), \
            'an http(s) URL ending in /v1, or "" to run the model in this process'
        yield "url", not self.url or bool(self.model), "set together with model (the model's name on that server)"
        for key in ("input_per_million", "output_per_million"):
            value = getattr(self, key)
            yield key, _money(value, empty=not self.model), \
                'a dollar amount as a string, like "0.15" (required when model is set)'
        yield "examples", _int(self.examples) and self.examples >= 0, "an int >= 0"
        yield "max_chars", _int(self.max_chars) and self.max_chars >= 0, "an int >= 0 (0: whole texts)"
        yield "timeout", _num(self.timeout) and self.timeout > 0, "a number > 0"
        yield "retries", _int(self.retries) and 0 <= self.retries <= 10, "an int from 0 to 10"
        yield "batch_size", _int(self.batch_size) and self.batch_size >= 1, "an int >= 1"

    @property
    def enabled(self) -> bool:
        """Whether a project has an LLM."""
        return bool(self.model)

    def token_price(self) -> TokenPrice:
        """The per-token prices (zero for a project without an LLM)."""
        return TokenPrice.per_million(self.input_per_million or "0", self.output_per_million or "0")
