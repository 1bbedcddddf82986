"""`kerasft.text_data.text_dataset`: reshuffled batches of raw strings."""

import keras
import numpy as np
import pytest

from kerasft.text_data import text_dataset

pytest.importorskip("tensorflow")

TEXTS = [f"text {i}" for i in range(16)]
LABELS = np.arange(16) % 2


def _epoch(data):
    texts = []
    for batch, labels in data:
        texts += [t.decode() for t in batch.numpy()]
        for text, label in zip(batch.numpy(), labels.numpy()):
            assert int(text.decode().split()[1]) % 2 == label
    return texts


def test_each_epoch_has_a_new_order_of_all_samples():
    data = text_dataset(TEXTS, LABELS, batch_size=4, seed=0)
    first, second = _epoch(data), _epoch(data)
    assert sorted(first) == sorted(second) == sorted(TEXTS)
    assert first != second
    assert _epoch(text_dataset(TEXTS, LABELS, batch_size=4, seed=0)) == first


class _Seen(keras.layers.Layer):
    """Passes its input through; records the training batches (eagerly)."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def call(self, ids, training=None):
        if training:
            self.batches += [keras.ops.convert_to_numpy(ids)[:, 0].tolist()]
        return ids


def test_fit_sees_a_new_order_each_epoch():
    import tensorflow as tf

    def number(texts, labels):  # "text 12" -> [12.0]
        return tf.strings.to_number(tf.strings.substr(texts, 5, 3))[:, None]

    data = text_dataset(TEXTS, LABELS, batch_size=4, seed=0)
    seen = _Seen()
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1)(seen(inputs)))
    model.compile("sgd", "mse", run_eagerly=True)
    model.fit(data.map(lambda t, y: (number(t, y), y)), epochs=2, verbose=0)
    assert len(seen.batches) == 8
    first, second = (sum(seen.batches[i : i + 4], []) for i in (0, 4))
    assert sorted(first) == sorted(second) == list(range(16))
    assert first != second


def test_no_shuffle_keeps_the_order():
    data = text_dataset(TEXTS, LABELS, batch_size=5, shuffle=False)
    assert _epoch(data) == TEXTS
    assert [len(b) for b, _ in data] == [5, 5, 5, 1]


def test_non_ascii_text_as_str_or_utf8_bytes():
    texts = ["café crème", "naïve".encode(), "plain"]
    data = text_dataset(texts, [0, 1, 0], batch_size=3, shuffle=False)
    ((batch, labels),) = list(data)
    assert [t.decode() for t in batch.numpy()] == [
        "café crème",
        "naïve",
        "plain",
    ]
    assert labels.numpy().tolist() == [0, 1, 0]


def test_a_keras_hub_classifier_fits_on_it():
    keras_hub = pytest.importorskip("keras_hub")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "text"]
    vocabulary += [str(i) for i in range(16)]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=8
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_heads=1,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
    )
    model = keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=preprocessor
    )
    model.compile(optimizer="sgd")
    history = model.fit(text_dataset(TEXTS, LABELS, 8, seed=1), verbose=0)
    assert len(history.history["loss"]) == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(texts="one string"), TypeError, "texts=.one string. of type str"),
        (dict(texts=42), TypeError, "texts=42 of type int"),
        (dict(texts=[]), ValueError, r"shape \(0,\)"),
        (dict(texts=[["a"], ["b"]]), ValueError, r"shape \(2, 1\)"),
        (dict(texts=["a", 3]), TypeError, "3 of type int"),
        (dict(labels=[0, 1]), ValueError, r"one entry per text \(16\)"),
        (dict(labels=["a"] * 16), TypeError, "dtype <U1"),
        (dict(batch_size=0), ValueError, "batch_size=0"),
        (dict(batch_size=2.5), TypeError, "batch_size=2.5"),
        (dict(shuffle="yes"), TypeError, "shuffle='yes'"),
        (dict(seed=-1), ValueError, "seed=-1"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = dict(texts=TEXTS, labels=LABELS) | kwargs
    with pytest.raises(error, match=match):
        text_dataset(**args)
