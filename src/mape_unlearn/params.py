"""Typed parameters of the stages, validated by Kedro before any node runs.

Each model mirrors one ``conf/base/parameters_<stage>.yml`` group, which holds the defaults;
a bad or missing value fails the run up front with the parameter's name, the value given and
what is allowed. The groups that configure an algorithm are the core's own settings objects
(``mask_search``: core.method.search.SearchSettings, ``unlearn``:
core.method.unlearn_settings.UnlearnSettings, ``importance``:
core.method.importance.ImportanceSettings,
``baselines.*``: core.method.selection.Selector, ``evaluate.relearn``:
core.evaluation.relearning.RelearnSettings), typed on the nodes that read them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from mape_unlearn.core.data.encoding import TokenView
from mape_unlearn.core.data.people import Answers
from mape_unlearn.core.evaluation.relearning import RelearnSettings
from mape_unlearn.core.runtime.precision import Autocast


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# data_prep: one model per sub-group (source, generator, holdout, forget), so that each node
# depends only on its own parameters.
class QAColumns(_Params):
    """The column of the user's data for each of the project's (null: the data has none)."""

    # groups rows into people or documents: the unit held out and forgotten (null: the data has
    # no id column, and `rows_per_person` numbers its people by row position)
    person_id: str | None
    question: str
    answer: str
    paraphrased_answer: str | None
    perturbed_answers: str | None
    fact: str | None  # the words of each answer that carry its information; null: derived


class LabelColumns(_Params):
    """The column of the user's classification data for each of the project's."""

    person_id: str
    text: str
    text_pair: str | None
    label: str


class QASourceParams(_Params):
    """Where the QA data comes from: the generator, or the catalog's ``qa_source`` file."""

    kind: Literal["generated", "file"]
    columns: QAColumns  # data_prep.task: qa
    label_columns: LabelColumns  # data_prep.task: classification
    # task qa, a file without an id column (TOFU's): each run of this many consecutive rows is
    # one person, p000, p001, ... (core.data.qa_data.positional_ids)
    rows_per_person: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_source_of_ids(self) -> QASourceParams:
        if (self.columns.person_id is None) == (self.rows_per_person is None):
            raise ValueError(
                f"data_prep.source.rows_per_person={self.rows_per_person} is not allowed with "
                f"data_prep.source.columns.person_id={self.columns.person_id!r}: person ids come "
                "from one column (name it, rows_per_person: null) or, for a file without one, "
                "from row positions (person_id: null and the number of rows per person)"
            )
        return self


Task = Literal["qa", "classification"]  # data_prep.task: what the data is for


class GeneratorParams(_Params):
    n_people: PositiveInt
    n_labels: int = Field(ge=2)  # task classification: classes drawn per person
    distinct_values: bool  # deal each attribute's values without replacement (see people.py)
    seed: int
    # short: one attribute per answer; biography: 20-40 words naming two or three (TOFU's shape)
    answers: Answers = "short"


class HoldoutParams(_Params):
    fraction: float = Field(ge=0.0, lt=1.0)
    ids: list[str] | None = None  # people the model never saw (overrides fraction)
    seed: int


class ForgetParams(_Params):
    fraction: float = Field(gt=0.0, lt=1.0)
    ids: list[str] | None
    from_file: bool  # the ids listed in the catalog's ``forget_request`` (overrides the above)
    min_retain_rows: PositiveInt  # fewer retain rows make the retain-side Fisher noise
    seed: int


class TrainParams(_Params):
    original: Literal["trained", "pretrained", "finetuned"]  # see parameters_train.yml
    retrain: bool  # train the retrain reference (false: unlearn.target must be holdout)
    base: Literal["directory", "gguf"]  # where `finetuned`'s base model comes from
    model_type: str
    architecture: dict[str, Any]
    epochs: PositiveInt
    lr: PositiveFloat
    batch_size: PositiveInt
    warmup_fraction: float = Field(ge=0.0, lt=1.0)
    weight_decay: float = Field(ge=0.0)
    seed: int
    device: str
    autocast: Autocast  # bf16 forward: auto, bf16 or off (core.runtime.precision)

    @model_validator(mode="after")
    def _base_needs_finetuning(self) -> TrainParams:
        if self.base == "gguf" and self.original != "finetuned":
            raise ValueError(
                f"train.base='gguf' is not allowed with train.original={self.original!r}: a GGUF "
                "base model is imported to be fine-tuned (train.original: finetuned)"
            )
        return self


class SweepParams(_Params):
    """The sparsity sweep: each method unlearned again at each sparsity (cheap metrics only)."""

    methods: list[str]
    sparsities: list[float]

    @field_validator("sparsities")
    @classmethod
    def _sparsities(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"sweep.sparsities contains {value!r}: expected 0 <= sparsity < 1")
        return values


class SuccessiveParams(_Params):
    """Successive unlearning: ``requests`` deletion requests in a row, masks re-searched."""

    requests: PositiveInt
    seed: int


class EvaluateParams(_Params):
    batch_size: PositiveInt
    device: str
    autocast: Autocast
    methods: list[str]
    relearn: RelearnSettings


class StudyRunParams(_Params):
    """One run of the study: a deletion request drawn with its own seed."""

    forget_seed: int


class StudyVariant(_Params):
    """A setting compared by the study: a selector of ``baselines`` and parameter overrides."""

    name: str
    selector: str
    mask_search: dict[str, Any] = {}  # overrides of `mask_search` (none: the stage's values)
    unlearn: dict[str, Any] = {}  # overrides of `unlearn`
    # module selectors: steps between searches of the mask on the model being unlearned
    # (0: searched once, on the original, as the stages do)
    research_every: int = Field(default=0, ge=0)
    # module selectors: the forget-side mask gradients of the fact tokens or of every answer token
    importance_tokens: TokenView = "fact"


class StudyParams(_Params):
    variants: list[StudyVariant]

    @field_validator("variants")
    @classmethod
    def _unique(cls, variants: list[StudyVariant]) -> list[StudyVariant]:
        names = [variant.name for variant in variants]
        if len(set(names)) < len(names):
            raise ValueError(f"study.variants names must be unique: got {names}")
        return variants
