"""Pins the public surface (optax does the same in optax_test.py).

Each public namespace re-exports exactly the names listed here, every
name imports, no public name shares its dotted path with a module, and
the import paths kerasft used to have fail with a message that names
what to import instead.
"""

import importlib
import pkgutil

import pytest

import kerasft
from kerasft._src import moved

PUBLIC = {
    "kerasft": [
        "augment",
        "backbones",
        "build_classifier",
        "build_fusion_model",
        "cached_fit",
        "callbacks",
        "data_selection",
        "distributed",
        "export",
        "FeatureCache",
        "finetune",
        "freeze",
        "freeze_until",
        "fusion_gates",
        "interpolate",
        "layers",
        "lr_find",
        "LRFindResult",
        "optimizers",
        "peft",
        "plotting",
        "recompute_bn_statistics",
        "register_stage_map",
        "regularizers",
        "resolve_layers",
        "resolve_stages",
        "schedules",
        "sequence",
        "Stage",
        "stage_index",
        "stages",
        "summary",
        "text_data",
        "tta_predict",
        "unfreeze",
        "wise_ft_sweep",
    ],
    "kerasft.augment": [
        "Augmentation",
        "augmentation",
        "KINDS",
        "mix",
        "MIX_KINDS",
        "Mixer",
        "MixOff",
    ],
    "kerasft.assets": [
        "ASSET_NAMES",
        "asset_paths",
        "AssetDownloadError",
        "AssetError",
        "AssetHashError",
        "check_sha256",
        "default_cache_dir",
        "FASHION_MNIST_CLASS_NAMES",
        "fashion_mnist_dir",
        "IMAGENET_EGYPTIAN_CAT",
        "IMAGENET_ESPRESSO",
        "is_provisioned",
        "keras_models_dir",
        "load_fashion_mnist",
        "load_fashion_mnist_subset",
        "main",
        "mobilenet_v1_imagenet_path",
        "Package",
        "provision",
        "register_asset",
        "vgg16_hed_path",
    ],
    "kerasft.backbones": [
        "AlexNet",
        "ConvNeXtBase",
        "ConvNeXtLarge",
        "ConvNeXtSmall",
        "ConvNeXtTiny",
        "DenseNet121",
        "DenseNet169",
        "DenseNet201",
        "InceptionV3",
        "Xception",
        "EfficientNetB0",
        "EfficientNetB1",
        "EfficientNetB2",
        "EfficientNetB3",
        "EfficientNetB4",
        "EfficientNetB5",
        "EfficientNetB6",
        "EfficientNetB7",
        "exact_gelu_backbone",
        "from_application",
        "ImagePreprocessing",
        "is_minilm_provisioned",
        "load_alexnet_weights",
        "load_hub_backbone",
        "load_hub_text_classifier",
        "load_hub_tokenizer",
        "minilm_dir",
        "MobileNet",
        "MobileNetV2",
        "provision_minilm",
        "ResNet101",
        "ResNet152",
        "ResNet50",
        "use_exact_gelu",
        "VGG16",
        "VGG19",
    ],
    "kerasft.callbacks": [
        "BackupAndRestore",
        "EMA",
        "FreezeUntil",
        "only",
        "SWA",
        "UnfreezeSchedule",
    ],
    "kerasft.cli": [
        "main",
    ],
    "kerasft.data_selection": [
        "MODES",
        "per_sample_loss",
        "select_by_loss",
    ],
    "kerasft.export": [
        "litert",
        "onnx",
        "tf_serving",
    ],
    "kerasft.finetune": [
        "BACKBONES",
        "finetune",
        "FinetuneConfig",
        "FinetuneError",
        "load_image_folder",
        "MIN_IMAGE_SIZE",
        "register_strategy",
        "RUN_FILES",
        "Strategy",
        "STRATEGIES",
    ],
    "kerasft.layers": [
        "FeatureFusion",
    ],
    "kerasft.optimizers": [
        "check_rebuildable",
        "discriminative",
        "DiscriminativeOptimizer",
        "layerwise_decay",
        "lr_range",
        "rebuild_optimizer",
        "StageLearningRateLogger",
        "trainable_change",
    ],
    "kerasft.distributed": [
        "initialize",
        "shard",
    ],
    "kerasft.peft": [
        "active_adapter",
        "add_adapter",
        "bitfit",
        "delete_adapter",
        "enable_lora",
        "list_adapters",
        "load_adapter_weights",
        "lora_layers",
        "merge_adapters",
        "save_adapter_weights",
        "set_active_adapter",
        "unload_adapters",
    ],
    "kerasft.plotting": [
        "plot_history",
        "plot_learning_rates",
    ],
    "kerasft.regularizers": [
        "L2",
        "L2SP",
        "l2sp",
        "reinitialize",
        "StagePenalty",
        "StrengthSchedule",
    ],
    "kerasft.schedules": [
        "OneCycle",
        "Scaled",
        "SlantedTriangular",
        "WarmUp",
    ],
    "kerasft.sequence": [
        "build_language_model",
        "build_sequence_classifier",
        "CELLS",
        "classifier_from_pretrained",
        "POOLINGS",
        "SequencePooling",
    ],
    "kerasft.text_data": [
        "build_vocabulary",
        "encode",
        "is_rotten_tomatoes_provisioned",
        "load_rotten_tomatoes",
        "load_rotten_tomatoes_plots",
        "OOV_TOKEN",
        "PAD_TOKEN",
        "provision_rotten_tomatoes",
        "ROTTEN_TOMATOES_DIRNAME",
        "rotten_tomatoes_path",
        "text_dataset",
        "tokenize",
    ],
}


@pytest.mark.parametrize("namespace", sorted(PUBLIC))
def test_all_is_exact_and_every_name_imports(namespace):
    module = importlib.import_module(namespace)
    assert sorted(module.__all__) == sorted(PUBLIC[namespace])
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_public_modules_are_exactly_the_documented_namespaces():
    found = {"kerasft"}
    for info in pkgutil.walk_packages(kerasft.__path__, "kerasft."):
        if "._" not in info.name:
            found.add(info.name)
    assert found == set(PUBLIC)


@pytest.mark.parametrize("namespace", sorted(PUBLIC))
def test_no_public_name_shadows_a_module(namespace):
    module = importlib.import_module(namespace)
    for name in module.__all__:
        value = getattr(module, name)
        if getattr(value, "__name__", None) == f"{namespace}.{name}":
            continue  # a public submodule, re-exported as itself
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"{namespace}.{name}")


@pytest.mark.parametrize("old", sorted(moved.MOVED_MODULES))
def test_old_module_paths_name_the_new_import(old):
    with pytest.raises(ModuleNotFoundError, match="from kerasft"):
        importlib.import_module(old)


def test_stage_class_is_reachable_without_shadowing():
    assert kerasft.Stage.__name__ == "Stage"
    assert callable(kerasft.stages)
    assert callable(kerasft.optimizers.discriminative)
    assert isinstance(kerasft.callbacks.UnfreezeSchedule, type)


def test_version():
    assert kerasft.__version__.count(".") == 2
