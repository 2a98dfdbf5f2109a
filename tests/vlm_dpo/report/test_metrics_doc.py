"""docs/metrics.md is generated from the registry: the committed page must equal the generated text."""

from vlm_dpo.eval.registry import COUNTS, METRICS
from vlm_dpo.report.metrics_doc import DOC_PATH, main, render


def test_committed_doc_is_up_to_date():
    assert DOC_PATH.read_text() == render(), "run: python -m vlm_dpo.report.metrics_doc"


def test_doc_lists_every_metric_and_count_with_its_sources():
    text = render()
    for entry in (*METRICS, *COUNTS):
        assert f"| `{entry.key}` |" in text, entry.key
    for source in ("Lin 2004", "Rohrbach et al. 2018", "Rafailov et al. 2023", "Li et al. 2023", "Hanley and McNeil"):
        assert source in text


def test_check_mode_fails_on_a_stale_page(tmp_path, monkeypatch, capsys):
    import vlm_dpo.report.metrics_doc as metrics_doc

    stale = tmp_path / "metrics.md"
    stale.write_text("# Metrics\n")
    monkeypatch.setattr(metrics_doc, "DOC_PATH", stale)
    assert main(["--check"]) == 1 and "out of date" in capsys.readouterr().err
    assert main([]) == 0 and stale.read_text() == render() and main(["--check"]) == 0
