# The GPU training image that KubernetesLauncher runs: `python -m deeplab <command> --flags…`.
#   docker build -t <registry>/deeplab-train:<tag> .
#   docker run --gpus all --rm <registry>/deeplab-train:<tag> train --helpfull
# Only deeplab/ goes in: the image never needs Airflow, the DAGs or the operators.
FROM tensorflow/tensorflow:2.21.0-gpu

# Versions from requirements.lock, the pins `make test` runs with (a test keeps this in step).
# TensorFlow itself comes from the base image (its GPU build, the lock's version); never
# install tensorflow-cpu on top of it. The lock minus its hashes: pip checks hashes only for
# what it downloads by name, and the constraints must stay usable next to the base image's
# own packages.
COPY requirements.lock scripts/lockfile.py /tmp/lock/
RUN python3 /tmp/lock/lockfile.py constraints /tmp/lock/requirements.lock > /tmp/lock/constraints.txt \
    && python3 -m pip install --no-cache-dir -c /tmp/lock/constraints.txt \
      tf-keras \
      tf-slim \
      google-cloud-storage \
      google-crc32c \
      zlib-ng \
      numpy \
      pillow \
      matplotlib \
      absl-py \
      protobuf \
    && rm -rf /tmp/lock \
    && (command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python)

RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin deeplab
WORKDIR /app
COPY --chown=deeplab:deeplab deeplab/ /app/deeplab/
# The C helpers (deeplab/native: label PNG decoding for build-tfrecords), built once here
# rather than on first use in every pod.
RUN DEEPLAB_NATIVE_DIR=/opt/deeplab/native python3 -m deeplab.native

ENV PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    DEEPLAB_CACHE_DIR=/home/deeplab/.cache/deeplab \
    DEEPLAB_NATIVE_DIR=/opt/deeplab/native \
    MPLBACKEND=Agg

USER deeplab
ENTRYPOINT ["python", "-m", "deeplab"]
CMD ["--help"]
