"""Checkpoint folders: complete only when every file ``algospace.json``
lists is there with its size (no Ray)."""
import json

from rllib_algospace.artifacts import METADATA_FILE, checkpoint_files, checkpoint_problem, complete_checkpoints, newest_complete_checkpoint


def _checkpoint(folder, iteration, files=None):
    folder.mkdir(parents=True)
    for rel, data in (files or {"module_state.pkl": b"x" * 100, "learner/state.pkl": b"y" * 10}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    meta = {"format": 4, "training_iteration": iteration, "files": checkpoint_files(folder)}
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    return folder


def test_a_checkpoint_is_complete_only_with_every_listed_file(tmp_path):
    ck = _checkpoint(tmp_path / "checkpoint_000000", 1)
    assert json.loads((ck / METADATA_FILE).read_text())["files"] == {"learner/state.pkl": 10, "module_state.pkl": 100}
    assert checkpoint_problem(ck) is None
    (ck / "extra.txt").write_text("Tune may add files")
    assert checkpoint_problem(ck) is None
    (ck / "module_state.pkl").write_bytes(b"x" * 40)
    assert checkpoint_problem(ck) == "module_state.pkl has 40 of 100 bytes"
    (ck / "module_state.pkl").unlink()
    assert checkpoint_problem(ck) == "module_state.pkl is missing"
    (ck / METADATA_FILE).write_text('{"format": 4, "training_iter')
    assert checkpoint_problem(ck).startswith("unreadable algospace.json")
    (ck / METADATA_FILE).unlink()
    assert checkpoint_problem(ck) == "no algospace.json"
    old = tmp_path / "old"
    old.mkdir()
    (old / METADATA_FILE).write_text(json.dumps({"format": 4, "training_iteration": 3}))
    assert "lists no files" in checkpoint_problem(old)


def test_the_newest_complete_checkpoint_goes_by_iteration_not_name(tmp_path):
    trial = tmp_path / "MAPPO_x"
    _checkpoint(trial / "checkpoint_000000", 7)  # rewritten by a resumed run: the name restarted, the iteration did not
    _checkpoint(trial / "checkpoint_000003", 4)
    broken = _checkpoint(trial / "checkpoint_000004", 9)
    (broken / "module_state.pkl").write_bytes(b"")
    complete, incomplete = complete_checkpoints(trial)
    assert [(it, p.name) for it, p in complete] == [(4, "checkpoint_000003"), (7, "checkpoint_000000")]
    assert incomplete == [(broken, "module_state.pkl has 0 of 100 bytes")]
    assert newest_complete_checkpoint(trial) == (7, trial / "checkpoint_000000")
    assert newest_complete_checkpoint(tmp_path / "nowhere") is None


def test_readers_skip_an_incomplete_checkpoint_with_a_warning(tmp_path, capsys):
    import pytest

    from rllib_algospace.checkpoints import CheckpointError, best_checkpoints, find_checkpoint

    trial = tmp_path / "exp" / "MAPPO_x"
    _checkpoint(trial / "checkpoint_000000", 1)
    broken = _checkpoint(trial / "checkpoint_000001", 2)
    (broken / "module_state.pkl").write_bytes(b"")
    ranked = best_checkpoints(tmp_path / "exp")
    assert [r.path.name for r in ranked] == ["checkpoint_000000"]
    assert "skipping" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match=r"checkpoint_000001: incomplete checkpoint \(module_state.pkl has 0 of 100 bytes\)"):
        find_checkpoint(broken)


def test_a_tuner_state_cut_short_by_a_kill_is_put_back_from_its_copy(tmp_path):
    import pickle

    from rllib_algospace.artifacts import TUNER_STATE, TUNER_STATE_COPY, keep_tuner_state

    state = tmp_path / TUNER_STATE
    state.write_bytes(pickle.dumps({"trials": [1, 2, 3]}))
    assert keep_tuner_state(tmp_path) is None  # complete: a copy is kept
    assert (tmp_path / TUNER_STATE_COPY).read_bytes() == state.read_bytes()
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])  # Tune rewrote it in place and was killed
    note = keep_tuner_state(tmp_path)
    assert note and "cut short" in note and state.read_bytes() == good
    state.write_bytes(b"")
    assert keep_tuner_state(tmp_path) and pickle.loads(state.read_bytes()) == {"trials": [1, 2, 3]}
    assert keep_tuner_state(tmp_path / "nothing") is None


def test_an_experiment_state_cut_short_is_put_back_from_its_copy(tmp_path):
    from rllib_algospace.artifacts import keep_tuner_state

    state = tmp_path / "experiment_state-2026-11-29_16-00-00.json"
    state.write_text('{"trial_data": [1, 2]}')
    assert keep_tuner_state(tmp_path) is None
    state.write_text("")  # the kill landed while Tune rewrote it
    note = keep_tuner_state(tmp_path)
    assert note and state.name in note and json.loads(state.read_text()) == {"trial_data": [1, 2]}


def test_a_result_line_cut_short_by_a_kill_is_dropped_before_resume(tmp_path):
    """Tune appends to a resumed trial's result files: a half-written last
    line would run into the next iteration's line and hide both."""
    from rllib_algospace.artifacts import prepare_resume
    from rllib_algospace.checkpoints import trial_scores

    trial = tmp_path / "MAPPO_env_0"
    trial.mkdir()
    rows = [json.dumps({"training_iteration": i, "val_sharpe": i / 10}) for i in (1, 2)]
    (trial / "result.json").write_text("\n".join(rows) + "\n" + rows[1][:17])
    (trial / "progress.csv").write_text("training_iteration,val_sharpe\n1,0.1\n2,0.")
    (tmp_path / "untouched").mkdir()
    notes = prepare_resume(tmp_path)
    assert len(notes) == 2 and all("cut short" in n for n in notes), notes
    assert "MAPPO_env_0/result.json" in notes[0] and "(17 bytes)" in notes[0]
    assert (trial / "result.json").read_text() == "\n".join(rows) + "\n"
    assert (trial / "progress.csv").read_text() == "training_iteration,val_sharpe\n1,0.1\n"
    with open(trial / "result.json", "a") as f:  # what Tune then does on resume
        f.write(json.dumps({"training_iteration": 3, "val_sharpe": 0.3}) + "\n")
    assert trial_scores(trial) == {1: 0.1, 2: 0.2, 3: 0.3}
    assert prepare_resume(tmp_path) == [] and prepare_resume(tmp_path / "nothing") == []


def test_the_search_state_tune_syncs_in_is_kept_and_a_first_write_cut_short_set_aside(tmp_path):
    """Tune copies its search algorithm's state (a pickle named .json) into
    the experiment folder file by file; a cut one makes Tune drop the restore
    and start the experiment again, so it is kept like Tune's own state."""
    import pickle

    from rllib_algospace.artifacts import keep_tuner_state

    older = tmp_path / "basic-variant-state-2026-11-29_16-00-00.json"
    newer = tmp_path / "basic-variant-state-2026-11-29_17-00-00.json"
    older.write_bytes(pickle.dumps({"finished": True, "session": 1}))
    newer.write_bytes(pickle.dumps({"finished": True, "session": 2}))
    assert keep_tuner_state(tmp_path) is None
    good = newer.read_bytes()
    newer.write_bytes(good[:7])
    note = keep_tuner_state(tmp_path)
    assert note and newer.name in note and "put back" in note and newer.read_bytes() == good
    # a third session's file, cut on its first write: no copy of it, so it is set aside
    third = tmp_path / "basic-variant-state-2026-11-29_18-00-00.json"
    third.write_bytes(good[:7])
    assert keep_tuner_state(tmp_path, repair=False) is None and third.exists()  # during a run: copies only
    note = keep_tuner_state(tmp_path)
    assert note and "set aside" in note and not third.exists() and third.with_name(third.name + ".cut").exists()
    # the only experiment state, cut with no copy: left for Tune to report (nothing older to read)
    only = tmp_path / "experiment_state-2026-11-29_18-00-00.json"
    only.write_text('{"trial_da')
    assert keep_tuner_state(tmp_path) is None and only.exists()
