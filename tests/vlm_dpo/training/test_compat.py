"""Workarounds on other libraries' private internals run only on the versions they were proven on; elsewhere the
fast path gives way to TRL's and the run-level fixes apply only where their attributes exist, each saying why."""

import logging
from types import SimpleNamespace

import pytest

from vlm_dpo.training import compat


@pytest.fixture
def versions(monkeypatch):
    """Fake installed versions: ``versions.update(trl="1.17.0")``; the others stay the proven series."""
    installed = {package: f"{series}.0" for package, series in compat.PROVEN.items()}
    monkeypatch.setattr(compat, "installed_version", lambda package: installed[package])
    return installed


def test_only_the_proven_series_is_proven(versions):
    assert compat.unproven("trl", "accelerate", "transformers") is None
    versions.update(trl="1.16.3", transformers="5.23.1+local")  # patch releases are the same series
    assert compat.unproven("trl", "transformers") is None
    versions.update(trl="1.17.0", accelerate="1.1.5")
    assert compat.unproven("trl", "accelerate") == "trl 1.17.0 (proven on 1.16.x), accelerate 1.1.5 (proven on 1.15.x)"


def test_real_installed_versions_are_the_pinned_ones():
    """requirements.txt pins the proven series: on the installed stack every workaround applies."""
    assert compat.unproven("trl", "accelerate", "transformers") is None


def test_another_trl_takes_plain_trl_with_one_log_line(versions, tmp_path, caplog):
    from trl import DPOTrainer

    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.choose import choose_trainer

    versions.update(trl="1.17.0")
    args = TrainConfig(output_dir=str(tmp_path), fast_dpo=True, report_to="none")
    with caplog.at_level(logging.INFO, logger="vlm_dpo"):
        cls, reason = choose_trainer(args, model=None, peft_config=None, train_dataset=None)  # nothing else is read
    assert cls is DPOTrainer and "trl 1.17.0 (proven on 1.16.x)" in reason
    assert [r.getMessage() for r in caplog.records if "fast_dpo" in r.getMessage()] == [
        f"fast_dpo: {reason}, so this run takes TRL's plain DPOTrainer path."]


def test_fast_dpo_off_is_said_once_at_info_level(tmp_path, caplog):
    from trl import DPOTrainer

    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.choose import choose_trainer
    from vlm_dpo.training.trainers.ddpo import DDPOTrainer

    with caplog.at_level(logging.INFO, logger="vlm_dpo"):
        assert choose_trainer(TrainConfig(output_dir=str(tmp_path), report_to="none"), None, None, None) == (
            DPOTrainer, "fast_dpo is off")
        dense = TrainConfig(output_dir=str(tmp_path), report_to="none", loss_type=["ddpo"])
        assert choose_trainer(dense, None, None, None) == (DDPOTrainer, "fast_dpo is off")
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO]


def test_ddpo_refuses_a_trl_without_the_seam_it_hooks(versions, tmp_path, monkeypatch):
    from trl import DPOTrainer

    from vlm_dpo.errors import UserError
    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.choose import choose_trainer

    versions.update(trl="2.0.0")
    monkeypatch.delattr(DPOTrainer, "_compute_loss")
    args = TrainConfig(output_dir=str(tmp_path), report_to="none", loss_type=["ddpo"])
    with pytest.raises(UserError, match=r"DPOTrainer._compute_loss, which this trl 2.0.0"):
        choose_trainer(args, None, None, None)


def test_the_fast_trainer_refuses_to_be_built_on_another_trl(versions, tmp_path, tiny_text_model_dir,
                                                             tiny_text_tokenizer):
    from datasets import Dataset
    from peft import LoraConfig

    from data_prep.chat import messages
    from vlm_dpo.models import load_model
    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer

    versions.update(trl="1.17.0")
    with pytest.raises(ValueError, match="trl 1.17.0"):
        FastDPOTrainer(model=load_model("tiny-smollm2", "float32", vision=False),
                       args=TrainConfig(output_dir=str(tmp_path), report_to="none"),
                       train_dataset=Dataset.from_list([messages("1 + 1?", "2.", "3.")]),
                       processing_class=tiny_text_tokenizer,
                       peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))


class Model:
    """Stands in for a model that transformers' evaluate() prepared for evaluation only."""

    def __init__(self):
        self._is_accelerate_prepared = True
        self._original_forward = self.plain_forward
        self.forward = "mixed-precision wrapper"

    def plain_forward(self):
        pass


def evaluated_trainer(accelerator):
    model = Model()
    if hasattr(accelerator, "_models"):
        accelerator._models = [model, "other"]
    return SimpleNamespace(model=model, model_wrapped=model, is_fsdp_enabled=False, is_deepspeed_enabled=False,
                           accelerator=accelerator)


def test_undo_eval_only_preparation_on_the_proven_versions(versions, caplog):
    trainer = evaluated_trainer(SimpleNamespace(_models=[]))
    with caplog.at_level(logging.WARNING):
        compat.undo_eval_only_preparation(trainer)
    assert not hasattr(trainer.model, "_is_accelerate_prepared")
    assert trainer.model.forward == trainer.model.plain_forward and trainer.accelerator._models == ["other"]
    assert not caplog.records


def test_undo_eval_only_preparation_elsewhere_only_where_its_attributes_exist(versions, caplog):
    versions.update(accelerate="1.16.0")
    trainer = evaluated_trainer(SimpleNamespace(_models=[]))
    with caplog.at_level(logging.WARNING):
        compat.undo_eval_only_preparation(trainer)
    assert trainer.accelerator._models == ["other"] and not hasattr(trainer.model, "_is_accelerate_prepared")
    assert len(caplog.records) == 1 and "accelerate 1.16.0 (proven on 1.15.x)" in caplog.text

    caplog.clear()
    trainer = evaluated_trainer(SimpleNamespace())  # an accelerate whose Accelerator has no _models
    with caplog.at_level(logging.WARNING):
        compat.undo_eval_only_preparation(trainer)
    assert trainer.model._is_accelerate_prepared and trainer.model.forward == "mixed-precision wrapper"  # untouched
    assert len(caplog.records) == 1 and "Not undoing" in caplog.text and "accelerate 1.16.0" in caplog.text


def test_tensorboard_folder_elsewhere_only_where_its_attribute_exists(versions, tmp_path, caplog):
    from transformers.integrations.integration_utils import TensorBoardCallback

    def trainer_with(callback):
        return SimpleNamespace(callback_handler=SimpleNamespace(callbacks=[callback]))

    versions.update(transformers="5.24.0")
    callback = TensorBoardCallback()
    with caplog.at_level(logging.WARNING):
        compat.keep_tensorboard_in_output_dir(trainer_with(callback), tmp_path)
    assert callback.logging_dir.startswith(str(tmp_path / "runs"))
    assert len(caplog.records) == 1 and "transformers 5.24.0" in caplog.text

    caplog.clear()
    bare = TensorBoardCallback()
    del bare.logging_dir
    with caplog.at_level(logging.WARNING):
        compat.keep_tensorboard_in_output_dir(trainer_with(bare), tmp_path)
    assert not hasattr(bare, "logging_dir")
    assert len(caplog.records) == 1 and "may land in ./runs" in caplog.text
