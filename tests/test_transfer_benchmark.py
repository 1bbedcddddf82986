"""benchmarks/transfer.py --quick: the benchmark's machinery, not its numbers.

Every strategy trains once, for one epoch, on a tiny random CNN with
BatchNorm (the image family) and a one-block Transformer (the text
family), and the docs' table and plot are written from the rows.
"""

import os
import sys

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")
)

import transfer  # noqa: E402


def test_quick_runs_every_strategy_and_writes_the_table(tmp_path):
    rows = transfer.run_quick()
    assert [(r["task"], r["strategy"]) for r in rows] == [
        (task, strategy)
        for task in ("fashion_mnist", "rotten_tomatoes")
        for strategy in transfer.STRATEGIES
    ]
    for row in rows:
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert 0.0 <= row["val_accuracy"] <= 1.0
    families = {r["task"]: r["auto"]["family"] for r in rows if "auto" in r}
    assert families == {
        "fashion_mnist": "convolutional",
        "rotten_tomatoes": "transformer",
    }
    wise = [r["wise_ft_alpha"] for r in rows if r["strategy"] == "wise-ft"]
    assert all(alpha in (0.25, 0.5, 0.75, 1.0) for alpha in wise)

    doc, png = tmp_path / "transfer.md", tmp_path / "transfer.png"
    page = tmp_path / "transformers.md"
    for path in (doc, page):
        path.write_text(
            f"before\n{transfer.BEGIN}\nold\n{transfer.END}\nafter\n"
        )
    transfer.write_docs(
        [dict(r, quick=False) for r in rows],
        doc=str(doc),
        png=str(png),
        pages={str(page): ("rotten_tomatoes",)},
    )
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("after\n")
    assert "old" not in text and "| `auto` |" in text
    assert "| `wise-ft` |" in text
    assert "| rotten_tomatoes | 1 |" in text and "| fashion_mnist | 1 |" in text
    # The family page: its tasks, and probe, full and auto only.
    text = page.read_text()
    assert "old" not in text and "| `auto` |" in text
    assert "| rotten_tomatoes | 1 |" in text and "fashion_mnist" not in text
    assert "wise-ft" not in text
    # auto's margin over the better baseline, signed.
    stats = transfer.summarize([dict(r, quick=False) for r in rows])
    margin = stats[("rotten_tomatoes", "auto", 1, rows[0]["backend"])][0] - max(
        stats[("rotten_tomatoes", s, 1, rows[0]["backend"])][0]
        for s in ("probe", "full")
    )
    assert f"| {margin:+.3f} |" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_recipes_refuses_unknown_variants_and_bad_counts(capsys):
    import text_recipes

    for argv, message in (
        (["--variants", "plain,bogus"], "--variants: unknown ['bogus']"),
        (["--tasks", "mnist"], "--tasks: unknown ['mnist']"),
        (["--seeds", "0"], "Received: --epochs 3 --seeds 0"),
    ):
        with pytest.raises(SystemExit):
            text_recipes.main(argv)
        assert message in capsys.readouterr().err
