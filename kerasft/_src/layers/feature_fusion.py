"""`FeatureFusion`: combine the feature vectors of several branches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int

MODES = ("mean", "max", "concat", "gated", "attention")
GATE_ACTIVATIONS = ("softmax", "sigmoid")
_GATED_MODES = ("gated", "attention")
_COMMON_WIDTH_MODES = ("mean", "max", "gated", "attention")


@keras.saving.register_keras_serializable(package="kerasft")
class FeatureFusion(keras.layers.Layer):
    """Fuses a list of feature vectors of possibly different widths.

    Each input is one branch's feature vector, shape `(batch, width_i)`:
    the pooled output of a backbone, or a pooled intermediate stage. The
    layer combines them in one of five modes:

    - `"mean"`: element-wise average of the branches.
    - `"max"`: element-wise maximum of the branches.
    - `"concat"`: concatenation along the feature axis.
    - `"gated"`: a learned, input-dependent scalar gate per branch and
      sample; the output is `sum_i gate_i * branch_i`. The gates come from
      a `Dense(num_branches)` layer applied to the concatenated branch
      inputs, each L2-normalized so that its scale does not decide. With
      `gate_activation="softmax"` (the default) the gates of a sample sum
      to 1 (a convex combination of the branches); with `"sigmoid"` each
      gate lies in `(0, 1)` independently and they do not sum to 1. The
      gate kernel starts at zero, so training starts from uniform gates
      (`1 / num_branches` for softmax, `0.5` for sigmoid).
    - `"attention"`: the branches are treated as a sequence of tokens
      (plus a learned per-branch embedding); a learned query token attends
      over them with `keras.layers.MultiHeadAttention` and the attended
      vector is the output. The attention weights over the branches,
      averaged over heads, are the gates; they sum to 1 per sample.

    `mean`, `max`, `gated` and `attention` need a common width. When the
    branch widths differ, pass `units`: every branch is then projected by
    its own `Dense(units)` (no activation). When the widths already agree
    and `units` is None, the branches are used as they are. In `concat`
    mode `units` is optional; when given, each branch is projected to
    `units` before concatenation, so that a wide branch does not dominate
    a narrow one.

    Rank-4 feature maps are refused, not pooled silently: pool them first
    (`keras.layers.GlobalAveragePooling2D()`, or a backbone built with
    `pooling="avg"`). `kerasft.build_fusion_model` does this for you.

    Example:

    ```python
    a = keras.Input((2048,))
    b = keras.Input((512,))
    fused, gates = kerasft.layers.FeatureFusion(
        "gated", units=256, return_gates=True
    )([a, b])
    # fused: (None, 256); gates: (None, 2), each row sums to 1.
    ```

    Args:
        mode: str. One of `"mean"`, `"max"`, `"concat"`, `"gated"`,
            `"attention"`.
        units: int or None. Common width the branches are projected to.
            Required by `mean`, `max`, `gated` and `attention` when the
            branch widths differ. Defaults to `None`.
        gate_activation: str or None. `"softmax"` or `"sigmoid"`; only for
            `mode="gated"`, where None means `"softmax"`. Defaults to
            `None`.
        num_heads: int or None. Attention heads; only for
            `mode="attention"`, where None means 1. The common width must
            be divisible by it. Defaults to `None`.
        return_gates: bool. If True, the layer returns `(fused, gates)`
            with `gates` of shape `(batch, num_branches)`. Only for the
            `gated` and `attention` modes. Defaults to `False`.
        kernel_initializer: Initializer for the projection kernels.
            Defaults to `"glorot_uniform"`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Returns:
        The fused tensor: `(batch, units or width)` for `mean`, `max`,
        `gated` and `attention`; `(batch, sum of widths)` or
        `(batch, num_branches * units)` for `concat`. With
        `return_gates=True`, a tuple `(fused, gates)`.

    Raises:
        ValueError: for an unknown mode or gate activation, an option that
            the mode does not use, fewer than two branches, inputs that
            are not rank 2, an unknown feature width, or differing widths
            without `units` in a mode that needs a common width.
        TypeError: if `units` or `num_heads` is not a positive int.
    """

    def __init__(
        self,
        mode: str,
        *,
        units: int | None = None,
        gate_activation: str | None = None,
        num_heads: int | None = None,
        return_gates: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"Unknown fusion mode. Expected one of {list(MODES)}. "
                f"Received: mode={mode!r}"
            )
        check_int("units", units, minimum=1, allow_none=True)
        if gate_activation is not None:
            if mode != "gated":
                raise ValueError(
                    "`gate_activation` only applies to mode='gated'. "
                    f"Received: gate_activation={gate_activation!r} with "
                    f"mode={mode!r}"
                )
            if gate_activation not in GATE_ACTIVATIONS:
                raise ValueError(
                    "`gate_activation` must be one of "
                    f"{list(GATE_ACTIVATIONS)}. "
                    f"Received: gate_activation={gate_activation!r}"
                )
        if num_heads is not None:
            if mode != "attention":
                raise ValueError(
                    "`num_heads` only applies to mode='attention'. "
                    f"Received: num_heads={num_heads!r} with mode={mode!r}"
                )
            check_int("num_heads", num_heads, minimum=1)
        check_bool("return_gates", return_gates)
        if return_gates and mode not in _GATED_MODES:
            raise ValueError(
                "`return_gates=True` needs a mode with gates "
                f"({list(_GATED_MODES)}). Received: mode={mode!r}"
            )
        self.mode = mode
        self.units = units
        self.gate_activation = gate_activation
        self.num_heads = num_heads
        self.return_gates = return_gates
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._projections: list[keras.layers.Dense] | None = None
        self._gate: keras.layers.Dense | None = None
        self._attention: keras.layers.MultiHeadAttention | None = None

    def _check_shapes(self, input_shape: Any) -> list[tuple]:
        """Validates the list of branch shapes; returns them as tuples."""
        if not isinstance(input_shape, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) for s in input_shape
        ):
            raise ValueError(
                f"{type(self).__name__} expects a list of at least 2 "
                "feature tensors, one per branch. "
                f"Received: input_shape={input_shape}"
            )
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < 2:
            raise ValueError(
                f"Mode {self.mode!r} fuses two or more branches. "
                f"Received: {len(shapes)} input(s) with shapes {shapes}"
            )
        for i, shape in enumerate(shapes):
            if len(shape) != 2:
                raise ValueError(
                    "All inputs must be rank-2 feature vectors "
                    f"(batch, width). Input {i} has rank {len(shape)}. "
                    "Pool feature maps first, e.g. with "
                    "keras.layers.GlobalAveragePooling2D() or a backbone "
                    "built with pooling='avg'. "
                    f"Received: input shapes {shapes}"
                )
            if shape[-1] is None:
                raise ValueError(
                    f"The width (last dimension) of input {i} must be "
                    f"known. Received: input shapes {shapes}"
                )
        return shapes

    def _common_width(self, widths: list[int]) -> int | None:
        """Width after projection; None in concat mode without units."""
        if self.units is not None:
            return self.units
        if self.mode == "concat":
            return None
        if len(set(widths)) > 1:
            raise ValueError(
                f"Mode {self.mode!r} needs a common width and the branch "
                f"widths differ ({widths}): `units` is required so that "
                "each branch can be projected to it. "
                f"Received: units={self.units}"
            )
        return widths[0]

    def build(self, input_shape: Any) -> None:
        shapes = self._check_shapes(input_shape)
        widths = [s[-1] for s in shapes]
        num_branches = len(shapes)
        width = self._common_width(widths)
        if self.units is not None:
            self._projections = []
            for i, shape in enumerate(shapes):
                dense = keras.layers.Dense(
                    self.units,
                    kernel_initializer=self.kernel_initializer,
                    dtype=self.dtype_policy,
                    name=f"projection_{i}",
                )
                dense.build(shape)
                self._projections.append(dense)
        if self.mode == "gated":
            self._gate = keras.layers.Dense(
                num_branches,
                kernel_initializer="zeros",
                dtype=self.dtype_policy,
                name="gate",
            )
            self._gate.build((shapes[0][0], sum(widths)))
        if self.mode == "attention":
            num_heads = self.num_heads or 1
            if width % num_heads:
                raise ValueError(
                    f"The common width ({width}) must be divisible by "
                    f"`num_heads`. Received: num_heads={num_heads}"
                )
            self.branch_embedding = self.add_weight(
                shape=(num_branches, width),
                initializer="zeros",
                name="branch_embedding",
            )
            self.query = self.add_weight(
                shape=(1, 1, width),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
                name="query",
            )
            self._attention = keras.layers.MultiHeadAttention(
                num_heads=num_heads,
                key_dim=width // num_heads,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="attention",
            )
            self._attention.build(
                (shapes[0][0], 1, width), (shapes[0][0], num_branches, width)
            )

    def _project(self, inputs: list) -> list:
        if self._projections is None:
            return list(inputs)
        return [proj(x) for proj, x in zip(self._projections, inputs)]

    def _fuse(self, inputs: Any, training: bool | None = None) -> tuple:
        """Returns `(fused, gates)`; gates is None for ungated modes."""
        inputs = list(inputs)
        branches = self._project(inputs)
        if self.mode == "concat":
            return ops.concatenate(branches, axis=-1), None
        stacked = ops.stack(branches, axis=1)
        if self.mode == "mean":
            return ops.mean(stacked, axis=1), None
        if self.mode == "max":
            return ops.max(stacked, axis=1), None
        if self.mode == "gated":
            # The gate sees each branch L2-normalized, so that a branch with
            # larger activations (e.g. caffe-preprocessed VGG features) does
            # not saturate the softmax by scale alone.
            unit = [
                ops.cast(
                    ops.normalize(ops.cast(x, "float32"), axis=-1), x.dtype
                )
                for x in inputs
            ]
            logits = self._gate(ops.concatenate(unit, axis=-1))
            # Gates in float32 so that they sum to 1 under mixed precision.
            logits = ops.cast(logits, "float32")
            if (self.gate_activation or "softmax") == "softmax":
                gates = ops.softmax(logits, axis=-1)
            else:
                gates = ops.sigmoid(logits)
            gates = ops.cast(gates, self.compute_dtype)
            fused = ops.sum(stacked * ops.expand_dims(gates, -1), axis=1)
            return fused, gates
        tokens = stacked + ops.cast(self.branch_embedding, self.compute_dtype)
        # Broadcast the query over the batch without a dynamic shape.
        query = ops.zeros_like(tokens[:, :1, :]) + ops.cast(
            self.query, self.compute_dtype
        )
        attended, scores = self._attention(
            query, tokens, return_attention_scores=True, training=training
        )
        gates = ops.mean(scores[:, :, 0, :], axis=1)
        return attended[:, 0, :], ops.cast(gates, self.compute_dtype)

    def call(self, inputs: Sequence, training: bool | None = None) -> Any:
        fused, gates = self._fuse(inputs, training=training)
        if self.return_gates:
            return fused, gates
        return fused

    def gates(self, inputs: Sequence) -> Any:
        """Returns the per-branch gates for concrete branch features.

        Useful when the layer was built with `return_gates=False`: it runs
        the same computation as `call` and returns only the gates, shape
        `(batch, num_branches)`.

        Args:
            inputs: list of tensors or arrays, one per branch, as passed to
                the layer.

        Returns:
            The gates tensor.

        Raises:
            ValueError: if the mode has no gates.
        """
        if self.mode not in _GATED_MODES:
            raise ValueError(
                f"Mode {self.mode!r} has no gates; only {list(_GATED_MODES)} "
                "do."
            )
        inputs = [
            ops.cast(ops.convert_to_tensor(x), self.compute_dtype)
            for x in inputs
        ]
        if not self.built:
            self.build([tuple(ops.shape(x)) for x in inputs])
        return self._fuse(inputs, training=False)[1]

    def compute_output_shape(self, input_shape: Any) -> Any:
        shapes = self._check_shapes(input_shape)
        batch = shapes[0][0]
        widths = [s[-1] for s in shapes]
        if self.mode == "concat":
            if self.units is None:
                width = sum(widths)
            else:
                width = self.units * len(widths)
        else:
            width = self._common_width(widths)
        if self.return_gates:
            return (batch, width), (batch, len(shapes))
        return (batch, width)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "units": self.units,
                "gate_activation": self.gate_activation,
                "num_heads": self.num_heads,
                "return_gates": self.return_gates,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
