# The GPU training image that KubernetesLauncher runs: `python -m deeplab <command> --flags…`.
#   docker build -t <registry>/deeplab-train:<tag> .
#   docker run --gpus all --rm <registry>/deeplab-train:<tag> train --helpfull
# Only deeplab/ goes in: the image never needs Airflow, the DAGs or the operators.
FROM tensorflow/tensorflow:2.21.0-gpu

# Same pins as requirements.txt (a test keeps them in step). TensorFlow itself comes from the
# base image (its GPU build); never install tensorflow-cpu on top of it.
RUN python3 -m pip install --no-cache-dir \
      tf-keras==2.21.0 \
      tf-slim==1.1.0 \
      google-cloud-storage==3.17.1 \
      google-crc32c==1.9.0 \
      zlib-ng==1.1.0 \
      numpy==2.4.6 \
      pillow==13.0.0 \
      matplotlib==3.11.2 \
      absl-py==2.5.1 \
      protobuf==7.36.2 \
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
