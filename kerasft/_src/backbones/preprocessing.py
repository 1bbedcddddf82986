"""The ImageNet input preprocessing of keras.applications, as a layer."""

from __future__ import annotations

import keras
from keras import ops

MODES = ("caffe", "tf", "torch", "none")

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="kerasft")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw 0-255 RGB pixels to what a pretrained network expects.

    This is `keras.applications.<family>.preprocess_input` as a layer, so a
    model that contains it takes raw pixels: at training time, at prediction
    time and once exported for serving, with no client-side preprocessing.

    Modes (those of `keras.applications.imagenet_utils.preprocess_input`):
    - `"caffe"` (VGG, ResNet v1): RGB to BGR, then subtract the ImageNet
      channel means; no scaling.
    - `"tf"` (MobileNet, MobileNetV2, ResNet v2, Inception, Xception): scale
      to [-1, 1].
    - `"torch"` (DenseNet, AlexNet): scale to [0, 1], then normalize each
      channel with the ImageNet mean and standard deviation.
    - `"none"`: pass through (EfficientNet and ConvNeXt carry their own
      rescaling layers).

    Example:

    ```python
    layer = kerasft.backbones.ImagePreprocessing("tf")
    layer(np.full((1, 2, 2, 3), 255.0))  # all ones
    ```

    Args:
        mode: str. One of `"caffe"`, `"tf"`, `"torch"`, `"none"`.
        data_format: str or None. `"channels_last"` or `"channels_first"`.
            Defaults to `keras.config.image_data_format()`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    def __init__(self, mode: str, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"Unknown preprocessing mode. Allowed: {list(MODES)}. "
                f"Received: mode={mode!r}"
            )
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last' or 'channels_first'. "
                f"Received: data_format={data_format!r}"
            )
        self.mode = mode
        self.data_format = data_format
        self.supports_masking = True

    def _per_channel(self, values, rank):
        shape = [1] * rank
        shape[-1 if self.data_format == "channels_last" else 1] = 3
        return ops.reshape(
            ops.convert_to_tensor(values, dtype=self.compute_dtype), shape
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        rank = len(x.shape)
        axis = -1 if self.data_format == "channels_last" else 1
        if self.mode == "none":
            return x
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            x = x / 255.0
            mean = self._per_channel(_TORCH_MEAN, rank)
            std = self._per_channel(_TORCH_STD, rank)
            return (x - mean) / std
        x = ops.flip(x, axis=axis)
        return x - self._per_channel(_CAFFE_MEAN_BGR, rank)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "data_format": self.data_format})
        return config
