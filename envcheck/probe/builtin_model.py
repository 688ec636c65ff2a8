"""Build the built-in golden model and input set from code (run as a script, needs TensorFlow).

The host tool never imports TensorFlow, so `envcheck golden create --builtin` runs this file in a
subprocess with the reference interpreter:

    python builtin_model.py --out-model DIR --out-inputs FILE.npz [--edge]

The model is small but touches the kernels that drift between environments: convolutions,
batch normalisation with non-trivial statistics, matmuls, GELU/tanh/softmax, multi-head attention
and a GRU. Weights and inputs are seeded, so a rebuild gives the same bundle contents. `--edge` builds its
edge variant, the image branch alone (no attention, no GRU), which converts to TFLite with builtin ops.
"""
import argparse
import os
import sys

SEED = 20261126
BATCH_RANDOM = 24  # seeded realistic rows; edge-value rows are appended after these
IMAGE_SHAPE = (16, 16, 3)
SERIES_SHAPE = (12, 6)
NUM_CLASSES = 10


def build_model(edge=False):
    import numpy as np
    import keras
    from keras import layers

    keras.utils.set_random_seed(SEED)
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    series = keras.Input(shape=SERIES_SHAPE, name="series")

    x = layers.Conv2D(12, 3, padding="same")(image)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("gelu")(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(32, activation="tanh")(x)

    if edge:  # Keras 3's GRU keeps a TensorList without a static element shape: no TFLite builtin op for it
        h = layers.Dense(48, activation="gelu")(x)
    else:
        s = layers.Dense(16)(series)
        s = s + layers.MultiHeadAttention(num_heads=2, key_dim=8)(s, s)
        s = layers.LayerNormalization()(s)
        s = layers.GRU(16)(s)
        h = layers.Concatenate()([x, s])
        h = layers.Dense(48, activation="gelu")(h)
    logits = layers.Dense(NUM_CLASSES)(h)
    outputs = {
        "class_probs": layers.Softmax(name="class_probs")(logits),
        "embedding": layers.Dense(8, name="embedding")(h),
    }
    model = keras.Model(inputs={"image": image} if edge else {"image": image, "series": series}, outputs=outputs)

    # NOTE: fresh BatchNorm layers hold mean 0 / variance 1, which makes them an identity and
    # hides their kernels; give them seeded statistics like a trained model has.
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0.0, 0.2, beta.shape).astype("float32"),
                rng.normal(0.0, 0.5, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, var.shape).astype("float32"),
            ])
    return model


def build_inputs(edge=False):
    """Seeded realistic rows, then edge rows: zeros, large magnitudes, tiny (subnormal-adjacent) values."""
    import numpy as np

    rng = np.random.default_rng(SEED + 1)
    image = rng.normal(0.0, 1.0, (BATCH_RANDOM,) + IMAGE_SHAPE)
    series = np.cumsum(rng.normal(0.0, 0.3, (BATCH_RANDOM,) + SERIES_SHAPE), axis=1)
    edges_image = [np.zeros(IMAGE_SHAPE), np.full(IMAGE_SHAPE, 1e3), np.full(IMAGE_SHAPE, 1e-30),
                   rng.normal(0.0, 50.0, IMAGE_SHAPE)]
    edges_series = [np.zeros(SERIES_SHAPE), np.full(SERIES_SHAPE, -1e3), np.full(SERIES_SHAPE, 1e-30),
                    rng.normal(0.0, 50.0, SERIES_SHAPE)]
    inputs = {
        "image": np.concatenate([image, np.stack(edges_image)]).astype("float32"),
        "series": np.concatenate([series, np.stack(edges_series)]).astype("float32"),
    }
    if edge:
        del inputs["series"]
    return inputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-model", required=True, help="directory to write the SavedModel to")
    parser.add_argument("--out-inputs", required=True, help="npz file to write the golden inputs to")
    parser.add_argument("--edge", action="store_true", help="the edge variant (converts to TFLite)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    model = build_model(edge=args.edge)
    model.export(args.out_model, format="tf_saved_model", verbose=False)
    np.savez(args.out_inputs, **build_inputs(edge=args.edge))
    return 0


if __name__ == "__main__":
    sys.exit(main())
