"""One small `harness bench` run with this package's specs, end to end."""

import harness_stripes.plugin

from harness import main


def test_bench_runs(harness_plugin, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path))
    harness_plugin(harness_stripes.plugin)
    code = main(["bench", "--dataset", "stripes", "--model", "stripes-cnn",
                 "--attack", "mi-fgsm,loss-threshold", "--defense", "none,noise-training",
                 "--epochs", "2", "--n-train", "400", "--n-test", "100",
                 "--attack-opt", "mi-fgsm.steps=3", "--no-checks"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mi-fgsm" in out and "noise-training" in out
