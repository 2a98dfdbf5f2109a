"""What a training run's folder says about the run, read back through one typed record.

Training writes ``run_config.yaml`` (every resolved field, plus ``vision`` and ``data_preparation``); inference, the
app, export and the reports read it only through ``RunRecord``, so that a default (TRL's beta, the image size) is
decided here once and a run is a vision run for one reason: the record says so (older folders: a saved image
processor).

    record = RunRecord.from_config(yaml.safe_load(open("outputs/tiny/run_config.yaml")), "outputs/tiny")
    record.beta, record.vision, record.tuned_generation
"""

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BETA = 0.1  # TRL's DPOConfig default, for a folder whose config does not say
DEFAULT_LONGEST_EDGE = 512  # data_prep's default image size (PrepareOptions.image_longest_edge)


@dataclass(frozen=True)
class RunRecord:
    folder: Path
    model_name_or_path: str  # the base the adapter was trained on
    vision: bool  # a vision-language run (images), else a text run
    beta: float = DEFAULT_BETA
    method: str = "dpo"
    coh_positive: str = ""
    coh_negative: str = ""
    image_longest_edge: int = DEFAULT_LONGEST_EDGE  # how data_prep decoded the run's images
    dtype: str | None = None
    dataset_name: str | None = None
    prepared_dir: str | None = None
    dataset_test_split: str = "test"
    data_preparation: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict, folder: str | Path) -> "RunRecord":
        """The record of the run in ``folder`` whose resolved config is ``config`` (as run_config.yaml holds it)."""
        folder = Path(folder)
        vision = config.get("vision")
        if vision is None:  # written before the record said it: the run saved an image processor
            vision = (folder / "processor_config.json").is_file()
        values = {name: config[name] for name in cls.__dataclass_fields__
                  if name not in ("folder", "vision") and config.get(name) is not None}
        if "beta" in values:
            values["beta"] = float(values["beta"])
        if "image_longest_edge" in values:
            values["image_longest_edge"] = int(values["image_longest_edge"])
        return cls(folder=folder, vision=bool(vision), **values)

    @property
    def tuned_generation(self) -> dict:
        """``generate_answers`` options for the tuned model: a Chain of Hindsight run answers after its positive
        phrase, cut before its negative one (with or without the phrase's closing punctuation); any other run as
        prompted."""
        if self.method != "coh":
            return {}
        return {"answer_prefix": self.coh_positive, "stop_at": self.coh_negative.rstrip(" :.,;")}
