"""The Gradio page: three tabs over ``vlm_dpo.app.panels`` and ``vlm_dpo.app.heldout``, served on this machine.

Nothing on the page comes from the internet: the theme names system fonts only (a Google font would be fetched
by every browser that opens the page), analytics and the version check are off, and there is no share link.
Handlers turn a ``UserError`` (such as ``BadInput``) into a warning plus a line of text in the panel; anything
else is logged with its traceback on the console and shown as one line, so the page never shows a stack trace
and keeps serving.
"""

from __future__ import annotations

import html
import logging
import os
import threading

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at launch: no telemetry, no version check

import gradio as gr  # noqa: E402 -- after the variable above

from data_prep.errors import UserError  # noqa: E402
from vlm_dpo.app import heldout  # noqa: E402
from vlm_dpo.app.panels import Session, ask, judge, read_image  # noqa: E402
from vlm_dpo.report.table import summary_table  # noqa: E402

logger = logging.getLogger(__name__)

THEME = gr.themes.Default(
    font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"],
)
JUDGE_HEADERS = ["model", "log p chosen", "log p rejected", "prefers", "reward chosen", "reward rejected", "margin"]
REPORT_HEADERS = ["#", "type", "change", "base hallucinates", "tuned hallucinates", "tuned reward margin", "question",
                  "base answer", "tuned answer"]
REPORT_WIDTHS = ["4%", "8%", "9%", "11%", "11%", "9%", "16%", "16%", "16%"]
YES_NO = {True: "yes", False: "no", None: "?"}


def _problem(error: Exception) -> str:
    """Call inside ``except``: a warning toast and the text for the panel; the traceback only on the console."""
    if isinstance(error, UserError):
        message = str(error)
    else:
        logger.exception("The app could not complete a request")
        message = f"Something went wrong ({type(error).__name__}: {error}). The console has the details."
    gr.Warning(message)
    return f"**{html.escape(message)}**"


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _header(session: Session, n_heldout: int) -> str:
    parts = [f"run `{session.run_dir}`", f"base model `{session.record.model_name_or_path}`",
             f"beta {session.beta:g}", f"{n_heldout} held-out pairs", f"answers up to {session.max_new_tokens} tokens"]
    text = "# Base vs tuned\n" + " · ".join(parts)
    if not session.vision:
        text += "\n\nA text-only run: ask and judge without an image."
    return text


def _inputs(session: Session, choices: list, name: str):
    """Image upload (or a held-out pair), what the model sees, and the question; returns the components."""
    image = gr.State(None)
    with gr.Column(scale=1):
        upload = gr.File(label="Image: upload or drop a file", file_types=["image"], type="filepath",
                         visible=session.vision, elem_id=f"{name}-upload")
        picker = gr.Dropdown(choices=choices, value=None, label="...or a held-out pair", visible=bool(choices),
                             elem_id=f"{name}-heldout")
        preview = gr.Image(label="What the model sees", type="pil", interactive=False, height=220,
                           visible=session.vision, elem_id=f"{name}-preview")
    question = gr.Textbox(label="Question", lines=2, render=False, elem_id=f"{name}-question")
    status = gr.Markdown(render=False, elem_id=f"{name}-status")

    def on_upload(path):
        try:
            decoded = read_image(session, path)
            return gr.skip(), decoded, decoded, ""
        except Exception as error:  # noqa: BLE001 -- shown in the page, never raised into Gradio
            return None, None, None, _problem(error)  # the drop zone again, for the next try

    upload.upload(on_upload, upload, [upload, image, preview, status])
    upload.clear(lambda: (None, None, ""), None, [image, preview, status])
    return image, preview, picker, question, status


def _ask_tab(session: Session, choices: list) -> None:
    with gr.Row():
        image, preview, picker, question, status = _inputs(session, choices, "ask")
        with gr.Column(scale=2):
            question.render()
            button = gr.Button("Ask both models", variant="primary", elem_id="ask-button")
            with gr.Row():
                base = gr.Textbox(label="Base model", lines=5, interactive=False, elem_id="ask-base")
                tuned = gr.Textbox(label="Tuned model (base + DPO adapter)", lines=5, interactive=False,
                                   elem_id="ask-tuned")
            status.render()

    def on_pick(index):
        if index is None:
            return gr.skip(), gr.skip(), gr.skip()
        pair = heldout.heldout_pair(session.heldout, index)
        return pair["image"], pair["image"], pair["question"]

    def on_ask(image, question):
        yield "(answering...)", "(waiting for the base model)", "Base model answering..."
        try:
            for result in ask(session, image, question):
                times = [f"{m}: {result[f'{m}_seconds']:.2f} s" for m in ("base", "tuned")
                         if result[f"{m}_seconds"] is not None]
                notes = "".join(f"\n\n{html.escape(note)}" for note in result["notes"])
                yield (result["base"], result["tuned"] if result["tuned"] is not None else "(answering...)",
                       " · ".join(times) + f" (greedy, up to {session.max_new_tokens} new tokens){notes}")
        except Exception as error:  # noqa: BLE001 -- shown in the page
            yield "", "", _problem(error)

    picker.change(on_pick, picker, [image, preview, question])
    for trigger in (button.click, question.submit):
        trigger(on_ask, [image, question], [base, tuned, status], concurrency_id="model")


def _judge_tab(session: Session, choices: list) -> None:
    with gr.Row():
        image, preview, picker, question, status = _inputs(session, choices, "judge")
        with gr.Column(scale=2):
            question.render()
            with gr.Row():
                chosen = gr.Textbox(label="Chosen (good) answer", lines=3, elem_id="judge-chosen")
                rejected = gr.Textbox(label="Rejected (bad) answer", lines=3, elem_id="judge-rejected")
            button = gr.Button("Score both answers with both models", variant="primary", elem_id="judge-button")
            table = gr.Dataframe(headers=JUDGE_HEADERS, interactive=False, wrap=True, elem_id="judge-table")
            status.render()

    def on_pick(index):
        if index is None:
            return (gr.skip(),) * 5
        pair = heldout.heldout_pair(session.heldout, index)
        return pair["image"], pair["image"], pair["question"], pair["chosen"], pair["rejected"]

    def on_judge(image, question, chosen, rejected):
        try:
            result = judge(session, image, question, chosen, rejected)
        except Exception as error:  # noqa: BLE001 -- shown in the page
            return None, _problem(error)
        columns = ("logp_chosen", "logp_rejected", "prefers", "reward_chosen", "reward_rejected", "margin")
        rows = [[model, *(_fmt(result[model][key]) for key in columns)] for model in heldout.MODELS]
        tuned = result["tuned"]
        verdict = ("the chosen answer wins: tuning moved probability toward it, relative to the rejected one"
                   if tuned["chosen_wins"] else "the chosen answer does not win: tuning did not move probability "
                   "toward it, relative to the rejected one (a tie counts as a loss, as in training)")
        text = (f"Rewards are beta × (log p_tuned − log p_base) with the run's beta = {result['beta']:g}, summed over "
                f"the answer's tokens ({tuned['tokens_chosen']} chosen, {tuned['tokens_rejected']} rejected); the "
                f"base is the reference, so its rewards are 0. Tuned reward margin {tuned['margin']:+.4f}: {verdict}."
                + "".join(f"\n\n{html.escape(note)}" for note in result["notes"]))
        return rows, text

    picker.change(on_pick, picker, [image, preview, question, chosen, rejected])
    button.click(on_judge, [image, question, chosen, rejected], [table, status], concurrency_id="model")


def _summary(metrics: dict) -> str:
    """The report's own terminal table of metrics.json, or "" when it cannot read this one."""
    try:
        return f"```\n{summary_table(metrics)}\n```" if metrics else ""
    except (KeyError, TypeError, ValueError):  # metrics.json from another version: the pairs below still show
        return ""


def _report_table(rows: list[dict]) -> list[list]:
    return [[row["index"], row["question_type"], row["change"], YES_NO[row["base_hallucinated"]],
             YES_NO[row["tuned_hallucinated"]], _fmt(row["tuned_reward_margin"]), row["question"], row["base"],
             row["tuned"]] for row in rows]


def _report_detail(row: dict) -> str:
    lines = [f"**Pair {row['index']}** ({row['question_type']}, {row['change']})",
             *(f"**{label}:** {html.escape(row[key])}" for key, label in (
                 ("question", "Question"), ("chosen", "Chosen"), ("rejected", "Rejected"), ("base", "Base answer"),
                 ("tuned", "Tuned answer"))),
             *(f"**{m}:** log-prob margin {_fmt(row[f'{m}_logp_margin'])}, reward margin "
               f"{_fmt(row[f'{m}_reward_margin'])}, hallucinates: {YES_NO[row[f'{m}_hallucinated']]}"
               for m in heldout.MODELS)]
    return "\n\n".join(lines)


def _report_tab(session: Session) -> None:
    rows, metrics = heldout.read_report(session.run_dir)
    if rows:
        _report_browser(session, rows, metrics)
    else:
        gr.Markdown(f"No held-out report in `{session.run_dir}/report`: training writes one when `report_pairs` is "
                    f"above 0, or run `python infer.py --adapter {session.run_dir} --dataset DATA --report "
                    f"{session.run_dir}/report`.")
    for path in heldout.plot_files(session.run_dir):  # wide figures (three panels side by side): full width
        gr.Image(str(path), label=path.name, interactive=False)


def _report_browser(session: Session, rows: list[dict], metrics: dict) -> None:
    """Filters, the table of pairs, and the selected pair in full."""
    summary = _summary(metrics)
    if summary:
        with gr.Accordion(f"Summary: base vs tuned on {len(rows)} held-out pairs (metrics.json)", open=False):
            gr.Markdown(summary, elem_id="report-summary")
    with gr.Row():
        kind = gr.Dropdown(["all", *sorted({row["question_type"] for row in rows})], value="all",
                           label="Question type")
        change = gr.Dropdown(["all", *heldout.CHANGES], value="all", label="Tuned vs base")
        hallucination = gr.Dropdown(list(heldout.HALLUCINATION_FILTERS), value="any", label="Hallucination")
    shown = gr.State(rows)
    table = gr.Dataframe(_report_table(rows), headers=REPORT_HEADERS, interactive=False, wrap=True, max_height=400,
                         column_widths=REPORT_WIDTHS, elem_id="report-table")
    with gr.Row():
        image = gr.Image(label="Image", type="pil", interactive=False, height=220, visible=session.vision)
        detail = gr.Markdown("Select a row to see the pair.", elem_id="report-detail")

    def on_filter(kind, change, hallucination):
        kept = heldout.filter_rows(rows, kind, change, hallucination)
        return _report_table(kept), kept

    def on_select(kept, event: gr.SelectData):
        row = kept[event.index[0]]
        return heldout.report_image(session.heldout, row), _report_detail(row)

    for control in (kind, change, hallucination):
        control.change(on_filter, [kind, change, hallucination], [table, shown])
    table.select(on_select, shown, [image, detail])


def build(session: Session) -> gr.Blocks:
    """The page; model events share one worker, since one model serves them all."""
    choices = heldout.heldout_choices(session.heldout)
    with gr.Blocks(title="vlm-dpo: base vs tuned", analytics_enabled=False) as demo:
        gr.Markdown(_header(session, len(choices)))
        with gr.Tabs():
            with gr.Tab("Ask"):
                _ask_tab(session, choices)
            with gr.Tab("Judge a pair"):
                _judge_tab(session, choices)
            with gr.Tab("Held-out report"):
                _report_tab(session)
    demo.queue(default_concurrency_limit=1)
    return demo


def serve(session: Session, host: str, port: int, stop: threading.Event | None = None) -> gr.Blocks:
    """Serve the page on ``host:port`` until ``stop`` is set (when given; else return at once, serving in the
    background). Only the run's plot files are served from disk, besides Gradio's own uploads."""
    demo = build(session)
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, share=False, theme=THEME,
                    allowed_paths=[str(path) for path in heldout.plot_files(session.run_dir)],
                    max_file_size="50mb", footer_links=["settings"], ssr_mode=False, pwa=False, quiet=True)
    except OSError as error:  # the port is taken
        raise UserError(f"Cannot serve on {host}:{port} ({error}); pass another --port.") from None
    print(f"Serving on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    if stop is not None:
        try:
            while not stop.wait(0.5):
                pass
        finally:
            demo.close()
    return demo
