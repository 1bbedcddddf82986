"""Pins the public surface (optax does the same in optax_test.py)."""

import kerasft


def test_top_level_names():
    assert set(kerasft.__all__) >= {
        "Stage",
        "backbones",
        "build_classifier",
        "freeze",
        "freeze_until",
        "resolve_layers",
        "resolve_stages",
        "stage_index",
        "stages",
        "summary",
        "unfreeze",
    }
    for name in kerasft.__all__:
        assert hasattr(kerasft, name), name


def test_backbone_names():
    for name in kerasft.backbones.__all__:
        assert hasattr(kerasft.backbones, name), name
    assert "ResNet50" in kerasft.backbones.__all__


def test_version():
    assert kerasft.__version__.count(".") == 2


def test_learning_rate_names():
    assert {"SlantedTriangular", "OneCycle", "WarmUp", "Scaled"} <= set(
        dir(kerasft.schedules)
    )
    for name in kerasft.optimizers.__all__:
        assert hasattr(kerasft.optimizers, name), name
    assert callable(kerasft.optimizers.discriminative)
    assert callable(kerasft.optimizers.layerwise_decay)


def test_regularizer_names():
    for name in ("L2SP", "L2", "l2sp", "StrengthSchedule", "reinitialize"):
        assert hasattr(kerasft.regularizers, name), name


def test_cli_and_plotting_names():
    assert callable(kerasft.finetune.finetune)
    assert callable(kerasft.plotting.plot_history)
    assert callable(kerasft.plotting.plot_learning_rates)


def test_caching_names():
    assert callable(kerasft.cached_fit)
    assert isinstance(kerasft.FeatureCache, type)


def test_augment_and_data_selection_names():
    assert callable(kerasft.augment.augmentation)
    assert callable(kerasft.data_selection.select_by_loss)
