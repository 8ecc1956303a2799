"""champion.json lists every exported file with its sha256 and the mIoU it was scored at."""

from deeplab_pipeline.promote import champion_record

PLAN = {"model_name": "m", "run_id": "r", "export_path": "/x/export", "dataset_dir": "/d",
        "fingerprint": "f", "config_hash": "h", "config_uri": "/c", "eval_logdir": "/e"}


def test_champion_lists_each_file_with_sha256_and_miou():
  files = [{"path": "deeplab_int8.tflite", "bytes": 10, "sha256": "a" * 64},
           {"path": "frozen_inference_graph.pb", "bytes": 30, "sha256": "b" * 64},
           {"path": "saved_model/saved_model.pb", "bytes": 40, "sha256": "c" * 64}]
  export_result = {"frozen_graph": "/x/export/frozen_inference_graph.pb",
                   "formats": ["frozen", "saved_model", "tflite_int8"], "files": files,
                   "device_formats": {"frozen_miou": 0.61, "split": "val",
                                      "tflite_int8": {"file": "deeplab_int8.tflite",
                                                      "miou": 0.6, "agreement": 0.98}}}
  record = champion_record(PLAN, decision={"miou": 0.61}, export_result=export_result,
                           train_result={})
  assert record["formats"] == ["frozen", "saved_model", "tflite_int8"]
  got = {f["path"]: (f["format"], f["miou"], f["sha256"]) for f in record["files"]}
  assert got == {"deeplab_int8.tflite": ("tflite_int8", 0.6, "a" * 64),
                 "frozen_inference_graph.pb": ("frozen", 0.61, "b" * 64),
                 "saved_model/saved_model.pb": ("saved_model", 0.61, "c" * 64)}


def test_an_export_result_without_files_gives_empty_lists():
  record = champion_record(PLAN, decision={"miou": 0.5}, export_result={}, train_result={})
  assert record["formats"] == [] and record["files"] == []
