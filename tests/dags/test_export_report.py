"""The device formats' scores in the run report: the promote task's log and the demo summary.

The export_result.json below has the shape export writes (test_export_formats.py checks the
same rows on a real export); the expected cells are worked out by hand from it.
"""

import importlib.util
import pathlib

from deeplab.exporting import report
from deeplab_pipeline.promote import formats_table

REPO = pathlib.Path(__file__).resolve().parents[2]
EXPORT_RESULT = {
    "frozen_graph": "frozen_inference_graph.pb",
    "files": [{"path": "deeplab_int8.tflite", "bytes": 2_600_000, "sha256": "a" * 64},
              {"path": "deeplab.onnx", "bytes": 8_510_000, "sha256": "b" * 64},
              {"path": "frozen_inference_graph.pb", "bytes": 8_810_000, "sha256": "c" * 64}],
    "device_formats": {
        "split": "val", "num_images": 3, "frozen": {"miou": 0.75},
        "files": {"tflite_int8": "deeplab_int8.tflite", "onnx": "deeplab.onnx"},
        "formats": {
            "tflite_int8": {"agreement": 0.9862, "differing_pixels": 10, "pixels": 725,
                            "miou": 0.7431, "miou_drop": 0.0069, "rule": "mIoU drop <= 0.01",
                            "passed": True},
            "onnx": {"agreement": 1.0, "differing_pixels": 0, "pixels": 725, "miou": 0.75,
                     "miou_drop": 0.0, "rule": "agreement >= 0.999", "passed": True}}}}


def test_rows_hold_size_agreement_miou_and_verdict_of_each_format():
  rows = report.rows(report.summary(EXPORT_RESULT), EXPORT_RESULT["files"],
                     "frozen_inference_graph.pb")
  by_format = {r["format"]: r for r in rows}
  assert [r["format"] for r in rows][0] == "frozen"  # the reference first
  assert by_format["frozen"]["bytes"] == 8_810_000 and by_format["frozen"]["miou"] == 0.75
  assert by_format["tflite_int8"]["bytes"] == 2_600_000
  assert by_format["tflite_int8"]["agreement"] == 0.9862
  assert by_format["tflite_int8"]["verdict"] == "passed (mIoU drop <= 0.01)"
  assert by_format["onnx"]["verdict"] == "passed (agreement >= 0.999)"


def test_the_promote_task_prints_a_markdown_table_from_the_result_json():
  # The export's result JSON (XCom) carries report.summary() and a URI for the frozen graph.
  xcom = {"frozen_graph": "gs://b/runs/r/export/frozen_inference_graph.pb",
          "files": EXPORT_RESULT["files"], "device_formats": report.summary(EXPORT_RESULT)}
  lines = formats_table(xcom).splitlines()
  assert lines[0] == "| format | file | size (MB) | pixel agreement | mIoU | mIoU drop | verdict |"
  assert lines[2] == ("| frozen | frozen_inference_graph.pb | 8.81 | frozen graph | 0.7500 | "
                      "n/a | reference |")
  assert "| tflite_int8 | deeplab_int8.tflite | 2.60 | 98.62% | 0.7431 | +0.0069 | passed " \
         "(mIoU drop <= 0.01) |" in lines
  assert len(lines) == 5


def test_a_failed_format_reads_failed_and_no_device_format_gives_no_table():
  failed = {**EXPORT_RESULT, "device_formats": {
      **EXPORT_RESULT["device_formats"], "formats": {
          **EXPORT_RESULT["device_formats"]["formats"],
          "tflite_int8": {**EXPORT_RESULT["device_formats"]["formats"]["tflite_int8"],
                          "passed": False}}}}
  rows = report.rows(report.summary(failed), failed["files"], "frozen_inference_graph.pb")
  assert {r["format"]: r["verdict"] for r in rows}["tflite_int8"].startswith("FAILED")
  assert formats_table({"frozen_graph": "x.pb", "files": [], "device_formats": None}) == ""
  assert report.summary({"device_formats": None}) is None


def test_the_demo_summary_shows_the_table(capsys):
  spec = importlib.util.spec_from_file_location("demo", REPO / "scripts" / "demo.py")
  demo = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(demo)
  demo.print_summary({"run_id": "r", "state": "success", "tasks": {},
                      "formats": demo.export_formats(EXPORT_RESULT)})
  out = capsys.readouterr().out
  assert "  formats:" in out
  assert "| onnx | deeplab.onnx | 8.51 | 100.00% | 0.7500 | +0.0000 | passed" in out
