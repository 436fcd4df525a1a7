from mape_unlearn.pipelines.evaluate.plots import BARS, plot_evaluation


def _metrics(value: float) -> dict:
    return {
        "comparison": {"forget_quality": value, "model_utility": value, "mia_gap_min_k": value},
        "forget": {"exact_match": value},
        "retain": {"exact_match": 1 - value},
    }


def test_one_bar_per_metric_and_model_with_the_metric_values():
    metrics = {"original": _metrics(0.0), "unlearned": _metrics(0.4), "retrain": _metrics(1.0)}
    figure = plot_evaluation(metrics)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == list(metrics)
    heights = [patch.get_height() for patch in axes.patches]
    assert len(heights) == len(BARS) * len(metrics)
    forget_quality = heights[: len(metrics)]  # the first metric's bars, model by model
    assert forget_quality == [0.0, 0.4, 1.0]
